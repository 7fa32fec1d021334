"""The CLI answers at once: importing it, and every command's --help, imports no heavy library."""
import json
import subprocess
import sys

HEAVY = ("torch", "ray", "optuna", "matplotlib", "plotly", "sqlalchemy", "networkx")

PROBE = """
import json, sys
import einsearch.cli
from einsearch.cli import _load_commands, app
_load_commands()
after_import = [m for m in HEAVY if m in sys.modules]
import typer
command = typer.main.get_command(app)
names = sorted(command.list_commands(None))
for args in [["--help"]] + [[name, "--help"] for name in names]:
    try:
        command.main(args=args, prog_name="einsearch", standalone_mode=False)
    except SystemExit:
        pass
print(json.dumps({"after_import": after_import, "after_help": [m for m in HEAVY if m in sys.modules],
                  "commands": names}))
"""


def test_cli_import_and_every_help_import_no_heavy_library():
    done = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{PROBE}"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["after_import"] == [] and found["after_help"] == []
    assert {"search", "evaluate", "leaderboard", "sample", "show", "tasks"} <= set(found["commands"])


def test_einsearch_help_subprocess_does_not_import_torch():
    code = ("import runpy, sys\nsys.argv = ['einsearch', '--help']\ntry:\n"
            "    runpy.run_module('einsearch.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout and done.stdout.strip().splitlines()[-1] == "False"
