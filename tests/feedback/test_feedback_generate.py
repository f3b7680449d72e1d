"""``rlfoundry feedback generate``: sample K responses per prompt from a local model into
a project (the model is built and saved here: no download)."""

from __future__ import annotations

import json

import pytest
from needs import need

need("transformers", "llm")
import torch  # noqa: E402

from rlfoundry.cli.main import main  # noqa: E402
from rlfoundry.feedback.db import make_engine  # noqa: E402
from rlfoundry.feedback.projects import get_project, list_projects  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from rlfoundry.llm.models import load_model, load_tokenizer, save_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lm") / "nano"
    save_model(load_model("tiny:nano"), load_tokenizer("tiny"), path)
    return path


def run(capsys, *argv):
    code = main(["feedback", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_generate_samples_k_responses_per_prompt_into_a_project(tmp_path, capsys, model_dir):
    db = f"sqlite:///{tmp_path / 'g.db'}"
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(json.dumps({"id": f"q{i}", "prompt": f"{i}+{i}="}) + "\n" for i in range(5))
    )
    args = ["generate", "--model", str(model_dir), "--prompts", str(prompts), "--db", db]
    code, out, err = run(capsys, *args, "-n", "3", "--max-new-tokens", "6", "--batch-size", "2")
    assert code == 0, err
    assert "generated 3 responses for 5 prompts into 'prompts' (rank)" in out

    engine = make_engine(db)
    project = get_project(engine, "prompts")
    assert project.kind == "rank"
    items = _items(engine, project.id)
    assert sorted(items) == [f"q{i}" for i in range(5)]
    for i in range(5):
        prompt, responses, models = items[f"q{i}"]
        assert prompt == f"{i}+{i}=" and len(responses) == 3
        assert models == ["nano"] * 3  # hidden from annotators, kept for analysis
    # an untrained model samples (mostly) different responses: they are samples, not copies
    assert len({r for _, rs, _ in items.values() for r in rs}) > 5
    engine.dispose()

    # the same seed and batch size give the same responses
    db2 = f"sqlite:///{tmp_path / 'g2.db'}"
    args2 = ["generate", "--model", str(model_dir), "--prompts", str(prompts), "--db", db2]
    assert run(capsys, *args2, "-n", "3", "--max-new-tokens", "6", "--batch-size", "2")[0] == 0
    engine = make_engine(db2)
    assert _items(engine, get_project(engine, "prompts").id) == items
    engine.dispose()


def test_generate_two_responses_make_a_compare_project_from_a_text_file(
    tmp_path, capsys, model_dir
):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    prompts = tmp_path / "greet.txt"
    prompts.write_text("Say hi\n\nSay bye\n")
    code, out, err = run(
        capsys, "generate", "--model", str(model_dir), "--prompts", str(prompts), "--db", db,
        "--max-new-tokens", "4", "--project", "greetings", "--overlap", "1",
    )  # fmt: skip
    assert code == 0, err
    engine = make_engine(db)
    project = get_project(engine, "greetings")
    assert project.kind == "compare" and project.overlap == 1
    items = _items(engine, project.id)
    assert {k: v[0] for k, v in items.items()} == {"p1": "Say hi", "p3": "Say bye"}
    assert all(len(v[1]) == 2 for v in items.values())
    engine.dispose()


def test_generate_errors_before_sampling(tmp_path, capsys, model_dir):
    db = f"sqlite:///{tmp_path / 'e.db'}"
    prompts = tmp_path / "p.txt"
    prompts.write_text("1+1=\n")
    base = ["generate", "--prompts", str(prompts), "--db", db]
    code, _, err = run(capsys, *base, "--model", str(tmp_path / "missing"))
    assert code == 2 and "does not exist" in err
    code, _, err = run(capsys, *base, "--model", str(model_dir), "-n", "3", "--kind", "compare")
    assert code == 2 and "compare project needs -n 2" in err
    code, _, err = run(capsys, *base, "--model", str(model_dir), "-n", "1")
    assert code == 2 and "rank project needs -n 2" in err
    engine = make_engine(db)
    assert list_projects(engine) == []  # nothing was created
    engine.dispose()
    # -n 1 is fine for ratings
    assert run(capsys, *base, "--model", str(model_dir), "-n", "1", "--kind", "rate")[0] == 0


def _items(engine, project_id):
    """{external id: (prompt, [responses in stored order], [model names])}."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from rlfoundry.feedback.db import Item, Response

    out = {}
    with Session(engine) as s:
        for it in s.scalars(select(Item).where(Item.project_id == project_id)):
            rs = s.scalars(select(Response).where(Response.item_id == it.id).order_by(Response.idx))
            rs = list(rs)
            out[it.external_id] = (it.prompt, [r.text for r in rs], [r.model for r in rs])
    return out
