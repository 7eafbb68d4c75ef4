"""The studies: each module defines ``STUDY`` (a
:class:`~mmsbam.experiments.study.Study`), a configuration of the one
harness."""
