import os

# Fix the console width so rendered tables do not depend on the terminal.
os.environ["COLUMNS"] = "200"
os.environ.setdefault("NO_COLOR", "1")

# This machine's roofline figures (fusion machine) are cached per test session, in a folder of its own:
# the user's cache is never read or written, and each key is measured once per session.
if "FUSION_TEST_CACHE" not in os.environ:
    import tempfile

    os.environ["FUSION_TEST_CACHE"] = os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="fusion-test-cache-")
