"""The command line's promises: one-line errors, honest help, no stale output."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.__main__ import main
from infra.config import check_region, known_regions
from infra.errors import UserError


@pytest.mark.parametrize(
    ("region", "message"),
    [
        ("mars-1", "'mars-1' is not an AWS region; regions look like 'eu-west-1'"),
        ("eu-wset-1", "did you mean 'eu-west-1'?"),
    ],
)
def test_an_unknown_region_is_refused_before_loading(
    region: str, message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    code = main(["synth", "-c", f"aws:region={region}", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "aws:skipRegionValidation" in err
    assert len(err.strip().splitlines()) == 1


def test_regions_come_from_every_partition_and_the_escape_hatch_works():
    assert {"eu-west-1", "us-gov-west-1", "cn-north-1"} <= known_regions()
    assert "aws-global" not in known_regions()
    check_region("eu-west-1")
    check_region(None)  # the provider's default applies
    check_region("xx-future-1", "true")  # aws:skipRegionValidation, as Pulumi stores it
    with pytest.raises(UserError, match="'xx-future-1' is not an AWS region"):
        check_region("xx-future-1", "false")


def test_help_speaks_to_users_not_to_the_design_notes(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "DESIGN" not in text and "contract" not in text
    assert "synth" in text and "local-run" in text


def test_a_failed_synth_leaves_no_artifacts_of_the_previous_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / "__default__.asl.json", out / "__default__.mmd", out / "resources.json"]
    for path in stale:
        path.write_text("{}")
    notes = out / "notes.txt"  # not ours: --out may point at a folder with other files
    notes.write_text("keep me")
    code = main(["synth", "--project-dir", str(tmp_path / "nowhere"), "--out", str(out)])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not any(p.exists() for p in stale)
    assert notes.read_text() == "keep me"
