# from a clone of the repository: a virtual environment with affix in it, then that
# environment's commands on PATH (affix among them)
python3 -m venv .venv && .venv/bin/pip install .
. .venv/bin/activate
