"""Clean splits: --errata drop and --exclude leave out exactly what they name, counted per reason."""

import json
import shutil
from pathlib import Path

import pytest

from mmad import open_run
from mmad.data.clean import CleanSplit, ExcludeRule, benchmark_counts, benchmark_split, read_image_list
from mmad.data.errata import errata_manifest
from mmad.data.official import load_benchmark
from mmad.errors import ConfigError
from tests.helpers.mmad_tree import ABNORMAL_QUESTIONS, NORMAL_QUESTIONS, _qa, make_mmad_tree

PILLS = [f"DS-MVTec/pill/image/good/{i:03d}.png" for i in (0, 5, 21)]
BOTTLE = "DS-MVTec/bottle/image/broken_large/016.png"
TRANSISTORS = [f"DS-MVTec/transistor/image/misplaced/{i:03d}.png" for i in (0, 1)]


@pytest.fixture
def errata_tree(tmp_path: Path) -> Path:
    """The generated tree plus images the errata name: 3 misfiled pills (4 questions each), the bottle whose
    localization gold is wrong and 2 misplaced transistors (5 questions each, 1 of them localization)."""
    path = make_mmad_tree(tmp_path / "mmad")
    root = path.parent
    data = json.loads(path.read_text())
    sample = root / next(iter(data))
    for key in [*PILLS, BOTTLE, *TRANSISTORS]:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample, root / key)
        normal = key in PILLS
        data[key] = {
            "mask_path": "" if normal else "mask.png",
            "random_templates": data[next(iter(data))]["random_templates"],
            "similar_templates": data[next(iter(data))]["similar_templates"],
            "conversation": [_qa(q) for q in (NORMAL_QUESTIONS if normal else ABNORMAL_QUESTIONS)],
        }
    path.write_text(json.dumps(data))
    return path


def test_the_manifest_ships_every_erratum_with_its_source() -> None:
    errata = {e.id: e for e in errata_manifest().errata}
    assert set(errata) == {"pill-metal-nut", "bottle-016-localization", "transistor-misplaced-localization"}
    assert len(errata["pill-metal-nut"].images) == 22
    assert all(e.source.startswith("jam-cc/MMAD issue") and e.urls for e in errata.values())


def test_errata_drop_counts_per_reason(errata_tree: Path) -> None:
    benchmark = load_benchmark(errata_tree)
    counts = benchmark_counts(benchmark_split("drop", [], benchmark), benchmark).as_dict()
    assert counts["by_reason"] == {
        "erratum:pill-metal-nut": {"questions": 12, "images": 3},
        "erratum:bottle-016-localization": {"questions": 1, "images": 1},
        "erratum:transistor-misplaced-localization": {"questions": 2, "images": 2},
    }
    assert counts["questions"] == 15 and counts["images_left_out"] == 3  # the pills go whole; the others lose 1
    assert benchmark_counts(benchmark_split("keep", [], benchmark), benchmark).as_dict()["questions"] == 0


def test_exclude_counts_by_dataset_category_and_file(errata_tree: Path, tmp_path: Path) -> None:
    benchmark = load_benchmark(errata_tree)
    listed = tmp_path / "trained_on.txt"
    listed.write_text(f"# images a model was trained on\n{BOTTLE}\n{TRANSISTORS[0]}  # one more\n")
    split = benchmark_split("keep", ["VisA", "category:juice_bottle", f"images:{listed}"], benchmark)
    counts = benchmark_counts(split, benchmark).as_dict()
    label = next(r.label for r in split.exclude if r.kind == "images")
    assert label.startswith("images:") and label.endswith("(2 keys)") and str(listed) not in label
    # VisA candle: 2 good x 4 + 2 bad x 5; LOCO juice_bottle: 2 good x 4 + 4 bad x 5; the file: 2 images x 5
    assert counts["by_reason"] == {
        "exclude dataset:VisA": {"questions": 18, "images": 4},
        "exclude category:juice_bottle": {"questions": 28, "images": 6},
        f"exclude {label}": {"questions": 10, "images": 2},
    }
    assert counts["images_left_out"] == 12
    both = benchmark_counts(benchmark_split("drop", [f"images:{listed}"], benchmark), benchmark).as_dict()
    # an erratum comes first: the listed images' localization questions are counted under it
    assert both["by_reason"][f"exclude {label}"] == {"questions": 8, "images": 2}


def test_bad_exclusions_are_refused_with_the_fix(errata_tree: Path, tmp_path: Path) -> None:
    benchmark = load_benchmark(errata_tree)
    with pytest.raises(ConfigError, match=r"--exclude 'Visa': not a dataset or category.*dataset:NAME"):
        benchmark_split("keep", ["Visa"], benchmark)
    with pytest.raises(ConfigError, match="--exclude dataset:MVTec-AD: no image of this benchmark"):
        benchmark_split("keep", ["dataset:MVTec-AD"], benchmark)
    # the names it offers instead, under a word spelled right ("its categorys" before)
    with pytest.raises(ConfigError, match=r"--exclude category:zipper: no image .* its categories: "):
        benchmark_split("keep", ["category:zipper"], benchmark)
    strangers = tmp_path / "other.json"
    strangers.write_text(json.dumps(["MVTec-AD/screw/test/good/000.png"]))
    with pytest.raises(ConfigError, match="none of its 1 keys is an image of this benchmark"):
        benchmark_split("keep", [f"images:{strangers}"], benchmark)
    with pytest.raises(ConfigError, match=r"--exclude images:.*missing.txt: cannot read it"):
        read_image_list(tmp_path / "missing.txt")
    with pytest.raises(ConfigError, match="--errata 'some'"):
        CleanSplit("some")  # type: ignore[arg-type]


def test_a_training_file_in_mmad_json_shape_lists_its_images(tmp_path: Path) -> None:
    training = tmp_path / "train.json"
    training.write_text(json.dumps({BOTTLE: {"conversation": []}, PILLS[0]: {"conversation": []}}))
    assert read_image_list(training) == {BOTTLE, PILLS[0]}
    assert ExcludeRule("images", str(training), read_image_list(training)).matches(BOTTLE)


def test_a_run_with_errata_drop_and_exclude_asks_and_records_only_the_rest(errata_tree: Path, tmp_path: Path) -> None:
    import mmad

    benchmark = load_benchmark(errata_tree)
    full = benchmark.n_questions
    result = mmad.evaluate("random", errata_tree, out=tmp_path / "run", errata="drop", exclude="VisA", cache=False)
    run = open_run(result.run_dir)
    images = {r.image for r in run.plain}
    assert not images & set(PILLS) and not any(i.startswith("VisA/") for i in images)
    assert {r.question_type for r in run.plain if r.image == BOTTLE} == {
        "Anomaly Detection",
        "Defect Classification",
        "Defect Description",
        "Defect Analysis",
    }
    assert len(run.plain) == full - 15 - 18
    assert run.completeness.complete
    card = run.card["clean_split"]
    assert card["errata"] == "drop" and card["exclude"] == ["dataset:VisA"]
    assert card["left_out"]["questions"] == 33 and card["left_out"]["images_left_out"] == 7
    plain = mmad.evaluate("random", errata_tree, out=tmp_path / "plain", cache=False)
    assert "clean_split" not in open_run(plain.run_dir).card  # the official behaviour keeps its card (and hash)


def test_eval_flags_reach_the_selection(errata_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmad.cli import main

    out = tmp_path / "cli"
    assert main(["eval", "-m", "random", "-d", str(errata_tree), "-o", str(out), "--errata", "drop", "--no-cache"]) == 0
    assert open_run(out).card["clean_split"]["left_out"]["questions"] == 15
    capsys.readouterr()
    assert main(["eval", "-m", "random", "-d", str(errata_tree), "-o", str(tmp_path / "x"), "--exclude", "nope"]) == 2
    assert "not a dataset or category" in capsys.readouterr().err


def test_score_rescores_a_run_on_a_clean_split(
    errata_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import mmad
    from mmad.cli import main

    full = mmad.evaluate("random", errata_tree, out=tmp_path / "full", cache=False).run_dir
    clean = mmad.evaluate(
        "random", errata_tree, out=tmp_path / "clean", errata="drop", exclude="VisA", cache=False
    ).run_dir
    capsys.readouterr()
    args = ["--errata", "drop", "--exclude", "VisA", "--json", "--no-plot", "-o", str(tmp_path / "files")]
    assert main(["score", str(full), *args]) == 0
    rescored = json.loads(capsys.readouterr().out)
    assert rescored["left_out"]["questions"] == 33 and rescored["left_out"]["images_left_out"] == 7
    assert rescored["left_out"]["by_reason"]["exclude dataset:VisA"] == {"questions": 18, "images": 4}
    assert main(["score", str(clean), "--json", "--no-plot", "-o", str(tmp_path / "files2")]) == 0
    asked_clean = json.loads(capsys.readouterr().out)
    # the same model on the same questions: re-scoring the full run gives the clean run's table
    assert rescored["rows"] == asked_clean["rows"] and "left_out" not in asked_clean
    assert main(["score", str(full), "--exclude", "dataset:MVTec-AD", "--no-plot", "-o", str(tmp_path / "f3")]) == 2
    assert "no image of these answers is in it" in capsys.readouterr().err


def test_a_run_file_takes_errata_and_exclude(errata_tree: Path, tmp_path: Path) -> None:
    from mmad.run.config import RunConfig

    run_file = tmp_path / "run.toml"
    run_file.write_text(
        f'model = "random"\ndata = "{errata_tree}"\n[selection]\nerrata = "drop"\nexclude = ["VisA", "category:pill"]\n'
    )
    selection = RunConfig.from_file(run_file).selection
    assert (selection.errata, selection.exclude) == ("drop", ["VisA", "category:pill"])
    run_file.write_text(f'model = "random"\ndata = "{errata_tree}"\n[selection]\nerrata = "fix"\n')
    with pytest.raises(ConfigError, match="errata"):
        RunConfig.from_file(run_file)


def test_an_images_file_is_found_from_the_run_file_and_kept_absolute(
    errata_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmad
    from mmad.run.config import RunConfig

    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "keys.txt").write_text(f"{BOTTLE}\n")
    run_file = folder / "run.toml"
    run_file.write_text(f'model = "random"\ndata = "{errata_tree}"\n[selection]\nexclude = "images:keys.txt"\n')
    wanted = f"images:{(folder / 'keys.txt').resolve()}"
    assert RunConfig.from_file(run_file).selection.exclude == [wanted]
    monkeypatch.chdir(folder)  # a relative file on the command line is the current folder's...
    run = mmad.evaluate("random", errata_tree, out=tmp_path / "run", exclude="images:keys.txt", cache=False).run_dir
    assert open_run(run).config.selection.exclude == [wanted]  # ...and run.json keeps it absolute for a resume
    assert BOTTLE not in {r.image for r in open_run(run).plain}


def test_an_images_file_saved_with_a_bom_and_windows_line_ends_lists_every_key(tmp_path: Path) -> None:
    # Notepad writes a UTF-8 BOM and CRLF: the BOM must not become part of the first key (it then matched nothing,
    # silently), nor hide a json list from the json reader
    lines = tmp_path / "keys.txt"
    lines.write_bytes(f"\ufeff{BOTTLE}\r\n{PILLS[0]}\r\n".encode())
    assert read_image_list(lines) == {BOTTLE, PILLS[0]}
    listed = tmp_path / "keys.json"
    listed.write_bytes(("\ufeff" + json.dumps([BOTTLE, PILLS[0]])).encode())
    assert read_image_list(listed) == {BOTTLE, PILLS[0]}


def test_the_same_exclusions_in_any_order_or_repeated_make_one_card(errata_tree: Path, tmp_path: Path) -> None:
    # a split is a set of rules: `--exclude VisA --exclude GoodsAD` and the reverse (or a rule given twice) ask the
    # same questions, so they must share a card and be ranked together, and count each question under one reason
    benchmark = load_benchmark(errata_tree)
    listed = tmp_path / "keys.txt"
    listed.write_text(f"{BOTTLE}\n")
    one = benchmark_split("keep", ["VisA", "category:juice_bottle", f"images:{listed}"], benchmark)
    other = benchmark_split(
        "keep", [f"images:{listed}", "category:juice_bottle", "dataset:VisA", "VisA", "juice_bottle"], benchmark
    )
    assert one.card() == other.card()
    assert benchmark_counts(one, benchmark).as_dict() == benchmark_counts(other, benchmark).as_dict()
    assert len(other.card()["exclude"]) == 3


def test_rescoring_with_a_rule_the_run_already_applied_says_so(
    errata_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import mmad
    from mmad.cli import main

    clean = mmad.evaluate("random", errata_tree, out=tmp_path / "clean", exclude="VisA", cache=False).run_dir
    capsys.readouterr()
    assert main(["score", str(clean), "--exclude", "VisA", "--no-plot", "-o", str(tmp_path / "files")]) == 2
    err = capsys.readouterr().err
    # it is not "of this benchmark" (the answers are re-scored, not a benchmark), and the run's own split is named
    assert "this benchmark" not in err and "of these answers" in err
    assert "this run already left out dataset:VisA" in err
    rest = ["--exclude", "DS-MVTec", "--exclude", "MVTec-LOCO", "--exclude", "GoodsAD"]
    assert main(["score", str(clean), *rest, "--no-plot", "-o", str(tmp_path / "files")]) == 2
    err = capsys.readouterr().err  # no table of zeros; the flags named are the ones given
    assert "error: --exclude DS-MVTec --exclude MVTec-LOCO --exclude GoodsAD left out every answer" in err
    assert "--errata keep" not in err


def test_errata_drop_on_a_benchmark_without_those_errata_keeps_the_card(tmp_path: Path) -> None:
    # a benchmark of one's own (or a copy without the misfiled pills) asks the same questions with --errata drop:
    # the run must not be marked "not the official question set" nor grouped apart from the plain run
    import mmad

    tree = make_mmad_tree(tmp_path / "mine")
    plain = open_run(mmad.evaluate("random", tree, out=tmp_path / "plain", cache=False).run_dir)
    dropped = open_run(mmad.evaluate("random", tree, out=tmp_path / "drop", errata="drop", cache=False).run_dir)
    assert "clean_split" not in dropped.card and dropped.card_hash == plain.card_hash
    visa = open_run(mmad.evaluate("random", tree, out=tmp_path / "visa", exclude="VisA", cache=False).run_dir)
    both = mmad.evaluate("random", tree, out=tmp_path / "both", errata="drop", exclude="VisA", cache=False).run_dir
    assert open_run(both).card["clean_split"] == visa.card["clean_split"]
    assert open_run(both).card_hash == visa.card_hash


def test_a_bare_dataset_slash_category_is_a_category_and_a_near_miss_is_named(errata_tree: Path) -> None:
    # docs/protocol.md gives DS-MVTec/pill as a category's form: it was refused unless spelt category:DS-MVTec/pill
    benchmark = load_benchmark(errata_tree)
    bare = benchmark_split("keep", ["DS-MVTec/bottle"], benchmark)
    assert bare.card() == benchmark_split("keep", ["category:DS-MVTec/bottle"], benchmark).card()
    assert benchmark_counts(bare, benchmark).total_questions > 0
    with pytest.raises(ConfigError, match=r"--exclude 'visa': not a dataset or category of this benchmark \(did you"):
        benchmark_split("keep", ["visa"], benchmark)
    with pytest.raises(ConfigError, match=r"did you mean 'juice_bottle'\?"):
        benchmark_split("keep", ["juice-bottle"], benchmark)


def test_the_dry_run_says_what_the_clean_split_leaves_out(
    errata_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the dry run is where settings are checked before anything is spent: it counted the questions left, but never
    # said that (or why) some were left out
    from mmad.cli import main

    args = ["eval", "-m", "random", "-d", str(errata_tree), "-o", str(tmp_path / "x"), "--dry-run"]
    assert main([*args, "--errata", "drop", "--exclude", "VisA"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("  clean split: 33 questions left out ("))
    assert "exclude dataset:VisA: 18 questions on 4 images" in line and "erratum:pill-metal-nut: 12 questions" in line
    assert "erratum:bottle-016-localization: 1 question on 1 image;" in line
    assert main(args) == 0
    assert "left out" not in capsys.readouterr().out


def test_compare_says_a_clean_split_changes_the_question_set_not_the_answers(
    errata_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # only the questions both runs asked are paired, so a split cannot be part of B - A: it was listed as a protocol
    # difference that "may" explain it, as a raw dict
    import mmad
    from mmad.cli import main

    full = mmad.evaluate("random", errata_tree, out=tmp_path / "full", cache=False).run_dir
    part = mmad.evaluate("random", errata_tree, out=tmp_path / "part", errata="drop", limit=30, cache=False).run_dir
    capsys.readouterr()
    assert main(["compare", str(full), str(part)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "clean_split" not in out and "different protocols" not in out
    assert "question sets differ: A the whole benchmark; B --errata drop" in out
    assert main(["compare", str(full), str(part), "--json"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert any(n.startswith("question sets differ") for n in notes)
    assert not any(n.startswith("protocol differs") for n in notes)


def test_a_resume_refuses_an_images_file_that_changed_since_the_run_started(errata_tree: Path, tmp_path: Path) -> None:
    # the run file names the file, not its keys: a resume after the file was edited asked another selection, while
    # run.json's card still described the first
    import mmad
    from mmad.errors import RunError

    keys = tmp_path / "keys.txt"
    keys.write_text(f"{BOTTLE}\n")
    out = tmp_path / "run"
    mmad.evaluate("random", errata_tree, out=out, exclude=f"images:{keys}", cache=False)
    keys.write_text(f"{BOTTLE}\n{PILLS[0]}\n")
    # named as the Python caller wrote it (the CLI's message says --exclude and --out)
    changed = (
        r": exclude images:.*keys.txt changed since the run started \(then images:\w+ \(1 keys\), now images:\w+ \(2"
        r".*start a new run in another folder$"
    )
    with pytest.raises(RunError, match=changed):
        mmad.evaluate("random", errata_tree, out=out, exclude=f"images:{keys}", resume=True, cache=False)
    keys.write_text(f"# the same key, another way\n./{BOTTLE}\n")
    assert mmad.evaluate("random", errata_tree, out=out, exclude=f"images:{keys}", resume=True, cache=False).complete


def test_the_rescore_note_names_the_flags_given(errata_tree: Path, tmp_path: Path) -> None:
    import mmad
    from mmad.cli import main

    full = mmad.evaluate("random", errata_tree, out=tmp_path / "full", cache=False).run_dir
    files = tmp_path / "files"
    assert main(["score", str(full), "--errata", "drop", "--no-plot", "-o", str(files)]) == 0
    notes = json.loads((files / "scores.json").read_text())["notes"]
    assert notes[0].startswith("re-scored on a clean split (--errata drop): 15 questions left out")
    assert main(["score", str(full), "--exclude", "VisA", "--no-plot", "-o", str(files)]) == 0
    notes = json.loads((files / "scores.json").read_text())["notes"]
    assert notes[0].startswith("re-scored on a clean split (--exclude VisA): 18 questions left out")


def test_an_images_file_in_utf16_is_read_and_a_binary_file_refused(tmp_path: Path) -> None:
    # PowerShell's `>` writes UTF-16 with a BOM; a binary file (an image given by mistake) raised a traceback
    utf16 = tmp_path / "keys.txt"
    utf16.write_bytes(f"{BOTTLE}\r\n{PILLS[0]}\r\n".encode("utf-16"))
    assert read_image_list(utf16) == {BOTTLE, PILLS[0]}
    binary = tmp_path / "000.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    with pytest.raises(ConfigError, match=r"--exclude images:.*000.png: not a text file \(.*\); save it as UTF-8"):
        read_image_list(binary)


def test_an_images_file_only_partly_in_the_benchmark_is_counted_and_its_misses_named(
    errata_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # only a file none of whose keys matched was refused: one with a typo in some keys left fewer images out than
    # it listed, and nothing said so
    from mmad.cli import main

    listed = tmp_path / "trained.txt"
    typos = ["DS-MVTec/pill/image/good/999.png", "MVTec-AD/nosuch/a.png", "VisA/nosuch/b.png"]
    listed.write_text("\n".join([PILLS[0], BOTTLE, *typos]) + "\n", encoding="utf-8")
    rule = ["--exclude", f"images:{listed}"]

    def said(err: str) -> str:
        return " ".join(err.split())

    base = ["eval", "-m", "random", "-d", str(errata_tree), "--no-cache"]
    for extra in (["--dry-run", "-o", str(tmp_path / "dry")], ["-o", str(tmp_path / "run")]):
        capsys.readouterr()
        assert main([*base, *extra, *rule]) == 0
        err = said(capsys.readouterr().err)
        assert err.count("2 of its 5 keys are images of this benchmark") == 1, err
        assert "3 match none and leave nothing out" in err and "VisA/nosuch/b.png" in err
    full = tmp_path / "full"
    assert main([*base, "-o", str(full)]) == 0
    capsys.readouterr()
    assert main(["score", str(full), *rule, "--no-plot", "-o", str(tmp_path / "files")]) == 0
    err = said(capsys.readouterr().err)
    assert "2 of its 5 keys are images of these answers" in err and "MVTec-AD/nosuch/a.png" in err
    # every key matching: no warning
    listed.write_text(f"{PILLS[0]}\n{BOTTLE}\n", encoding="utf-8")
    assert main(["score", str(full), *rule, "--no-plot", "-o", str(tmp_path / "files2")]) == 0
    assert "keys are images of" not in said(capsys.readouterr().err)
