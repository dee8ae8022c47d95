import re
from pathlib import Path

from jaxcnn.bench import summary

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"


def quick_start_commands() -> list[str]:
    readme = README.read_text()
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", readme, re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_ci_runs_the_readme_test_command():
    (test_command,) = [c for c in quick_start_commands() if "pytest" in c]
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command.replace("sudo ", "") in ci  # CI runs as root, without sudo


def test_results_table_is_made_from_the_result_files():
    # `python -m jaxcnn.bench summary` writes it; an edit by hand fails here.
    assert summary.readme_table(README) == summary.results_table(ROOT / "benchmarks" / "results")


def test_readme_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    # A block that opens with `# NAME.py:` is a script of its own, run by its module's tests.
    blocks = [b for b in blocks if not re.match(r"# \w+\.py:", b)]
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:  # later blocks use the names earlier ones made
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["logits"].shape == (8, 10)


def test_links_and_pictures_in_the_docs_point_to_files():
    for doc in [README, ROOT / "docs" / "performance.md", ROOT / "benchmarks" / "README.md"]:
        targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text())
        local = [t for t in targets if "://" not in t]
        assert local or doc != README
        for target in local:
            assert (doc.parent / target).is_file(), f"{doc.name} links to missing {target}"
