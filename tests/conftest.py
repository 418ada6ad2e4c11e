import os

# Fix the console width so rendered tables do not depend on the terminal.
os.environ["COLUMNS"] = "200"
os.environ.setdefault("NO_COLOR", "1")
