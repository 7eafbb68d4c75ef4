"""What tools share and tests import: sample images, seeded model building,
weight loading, reconstructions, seeded maskings, salience statistics and
mask-content measures."""
