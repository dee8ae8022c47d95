import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", readme, re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_ci_runs_the_readme_test_command():
    (test_command,) = [c for c in quick_start_commands() if "pytest" in c]
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command.replace("sudo ", "") in ci  # CI runs as root, without sudo
