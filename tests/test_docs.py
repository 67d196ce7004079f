"""Docs are part of the feature: the CLI reference names every flag, the README starts right."""

from pathlib import Path

from edgeflow.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def test_cli_reference_names_every_command_and_flag():
    text = (ROOT / "docs" / "cli.md").read_text()
    missing = []
    for name, sub in _subparsers().items():
        if f"edgeflow {name}" not in text:
            missing.append(f"command {name}")
        for action in sub._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help" and flag not in text:
                    missing.append(f"{name} {flag}")
    assert not missing, f"docs/cli.md does not mention: {', '.join(missing)}"


def test_readme_opens_with_the_two_commands():
    lines = [line for line in (ROOT / "README.md").read_text().splitlines() if line.strip()]
    block = lines[lines.index("```sh") + 1 : lines.index("```sh") + 3]
    assert [b.split()[0:2] for b in block] == [["make", "demo"], ["make", "test"]]


def test_docs_links_resolve():
    readme = (ROOT / "README.md").read_text()
    import re

    for target in re.findall(r"\]\((docs/[^)#]+)\)", readme):
        assert (ROOT / target).is_file(), f"README links to missing {target}"
