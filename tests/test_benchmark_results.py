"""The RESULTS.md section writer every benchmark script uses (benchmarks/results.py)."""

import pytest


def test_write_marked_section_replaces_only_its_own_block(tmp_path):
    from results import write_marked_section

    path = tmp_path / "RESULTS.md"
    write_marked_section(path, "a", "<!-- a -->\nfirst\n<!-- /a -->\n")  # new file
    assert path.read_text() == "<!-- a -->\nfirst\n<!-- /a -->\n"
    write_marked_section(path, "b", "<!-- b -->\nother\n<!-- /b -->")  # appended
    write_marked_section(path, "a", "<!-- a -->\nsecond\n<!-- /a -->\n")  # replaced in place
    assert path.read_text() == "<!-- a -->\nsecond\n<!-- /a -->\n\n<!-- b -->\nother\n<!-- /b -->\n"
    with pytest.raises(ValueError, match="must contain the markers"):
        write_marked_section(path, "a", "no markers")
    assert "second" in path.read_text()  # a refused write leaves the file as it was
