"""rba: runtime behaviour analyzer for Linux hosts."""

# The one place the version is written: pyproject reads it, and so do `rba --version`,
# every report's run facts and packaging/build-deb.sh.
__version__ = "0.1.0"
