"""Shared pytest setup. The SLURM cluster fixture is imported by the modules that use it
(``from tests.slurm_fixture import slurm_cluster``)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "slurm: needs the local SLURM cluster of scripts/slurm (root, apt)")
