"""Tests of the synthetic eSpeak NG corpus (reslstm_jax.corpora.synthetic).

Generation tests use one speaker (60 files, about two seconds) and skip when the optional
``synthetic`` extra (espeakng-loader) is not installed.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf

from reslstm_jax.corpora import synthetic

RAVDESS_RE = re.compile(
    r"^(0[1-3])-(0[12])-(0[1-8])-(0[12])-(0[12])-(0[12])-(0[1-9]|1\d|2[0-4])\.wav$"
)
HAVE_ESPEAK = importlib.util.find_spec("espeakng_loader") is not None
needs_espeak = pytest.mark.skipif(
    not HAVE_ESPEAK, reason="espeakng-loader (the 'synthetic' extra) is not installed"
)
MODULE = "reslstm_jax.corpora.synthetic"


def wav_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.wav"))


def run_cli(*args, code=None):
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", MODULE]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def corpus(synthetic_actor):
    """Actor 01 of the seed-0 corpus, generated with two workers (`tests/conftest.py`)."""
    return synthetic_actor


# ---- plan, without eSpeak ------------------------------------------------------------------


def test_corpus_files_follow_ravdess():
    files = synthetic.corpus_files(24)
    assert len(files) == 1440
    names = [path.split("/")[1] for path, *_ in files]
    assert len(set(names)) == 1440
    assert all(RAVDESS_RE.match(name) for name in names)
    for path, emotion, intensity, statement, repetition, actor in files:
        assert path == f"Actor_{actor:02d}/" + synthetic.file_name(
            emotion, intensity, statement, repetition, actor
        )
    per_actor = collections.Counter(actor for *_, actor in files)
    assert set(per_actor) == set(range(1, 25)) and set(per_actor.values()) == {60}
    per_emotion = collections.Counter(f[1] for f in files if f[5] == 1)
    assert per_emotion == {1: 4, **{emotion: 8 for emotion in range(2, 9)}}
    assert not [f for f in files if f[1] == 1 and f[2] == 2], "RAVDESS has no strong neutral"
    assert len(synthetic.corpus_files(4)) == 240
    with pytest.raises(ValueError):
        synthetic.corpus_files(25)


def test_speakers_are_distinct_gendered_and_seeded():
    table = synthetic.speaker_table(0)
    assert [s.actor for s in table] == list(range(1, 25))
    assert len({(s.voice, s.pitch, s.rate, s.range) for s in table}) == 24
    assert len({s.voice for s in table}) == 24
    for speaker in table:
        variant = speaker.voice.split("+")[1]
        if speaker.actor % 2:
            assert speaker.gender == "male" and variant in synthetic.MALE_VOICES
        else:
            assert speaker.gender == "female" and variant in synthetic.FEMALE_VOICES
    assert synthetic.speaker_table(0) == table
    assert synthetic.speaker_table(1) != table


def test_plans_vary_between_repetitions_and_intensities():
    speaker = synthetic.speaker_table(0)[0]
    plan = synthetic.utterance_plan(0, speaker, 5, 1, 1, 1)
    assert plan == synthetic.utterance_plan(0, speaker, 5, 1, 1, 1)
    assert plan != synthetic.utterance_plan(0, speaker, 5, 1, 1, 2)
    assert plan != synthetic.utterance_plan(1, speaker, 5, 1, 1, 1)
    assert 80 <= plan["rate"] <= 450 and 0 <= plan["pitch"] <= 100 and 0 <= plan["volume"] <= 200
    # Strong anger is louder than normal anger on average (same prototype, more extreme).
    louder = [
        synthetic.utterance_plan(0, speaker, 5, 2, s, r)["volume"]
        - synthetic.utterance_plan(0, speaker, 5, 1, s, r)["volume"]
        for s in (1, 2)
        for r in (1, 2)
    ]
    assert np.mean(louder) > 0


def test_default_dir(monkeypatch, tmp_path):
    name = f"synthetic-v{synthetic.GENERATOR_VERSION}-seed0"
    monkeypatch.setenv("RESLSTM_JAX_DATA", str(tmp_path))
    assert synthetic.default_dir() == tmp_path / name
    monkeypatch.delenv("RESLSTM_JAX_DATA")
    assert synthetic.default_dir().parts[-3:] == (".cache", "reslstm_jax", name)


def test_small_flag_means_four_speakers():
    parser = synthetic._parser()
    assert parser.parse_args(["--small"]).speakers == 4
    assert parser.parse_args([]).speakers == 24
    assert parser.parse_args(["--speakers", "3"]).speakers == 3


# ---- generated files ------------------------------------------------------------------------


def test_layout_and_names(corpus):
    expected = [path for path, *_ in synthetic.corpus_files(1)]
    assert wav_files(corpus) == sorted(expected)
    assert sorted(p.name for p in corpus.iterdir()) == ["Actor_01", "synthetic_corpus.json"]
    names = [path.split("/")[1] for path in expected]
    assert all(RAVDESS_RE.match(name) for name in names)
    emotions = collections.Counter(name.split("-")[2] for name in names)
    assert emotions == {"01": 4, **{f"{e:02d}": 8 for e in range(2, 9)}}
    assert not [n for n in names if n.startswith("03-01-01-02-")]


def test_audio_format_duration_and_silences(corpus):
    for path in corpus.rglob("*.wav"):
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (
            48000,
            1,
            "PCM_16",
            "WAV",
        )
        assert 2.9 <= info.duration <= 5.3, path.name
        audio, _ = sf.read(str(path), dtype="float64")
        edge = int(0.3 * 48000)

        def db(x):
            return 10 * np.log10(np.mean(x**2) + 1e-20)

        start, end, whole = db(audio[:edge]), db(audio[-edge:]), db(audio)
        # Near-silent (a low noise floor, not digital zeros) before and after the speech.
        assert -90 < start < -50 and -90 < end < -50, path.name
        assert whole > start + 25, path.name


def test_repetitions_differ(corpus):
    first = (corpus / "Actor_01" / "03-01-03-01-01-01-01.wav").read_bytes()
    second = (corpus / "Actor_01" / "03-01-03-01-01-02-01.wav").read_bytes()
    assert first != second


def test_completion_marker(corpus):
    marker = json.loads((corpus / synthetic.MARKER_NAME).read_text())
    assert marker == synthetic.read_marker(corpus)
    assert marker["synthetic"] is True
    assert "eSpeak NG" in marker["description"] and "eSpeak NG" in marker["synthesizer"]
    assert marker["generator_version"] == synthetic.GENERATOR_VERSION
    assert (marker["seed"], marker["speakers"], marker["file_count"]) == (0, 1, 60)
    assert marker["sample_rate"] == 48000
    assert len(marker["voice_settings"]) == 1
    voice = marker["voice_settings"][0]
    assert voice["actor"] == 1 and voice["gender"] == "male" and voice["voice"].startswith("en-us+")
    assert not (corpus / synthetic.PENDING_NAME).exists()


@needs_espeak
def test_same_seed_is_byte_identical_with_one_worker(corpus, tmp_path):
    again = synthetic.generate(tmp_path / "again", speakers=1, seed=0, workers=1, progress=False)
    assert wav_files(again) == wav_files(corpus)
    for relative in wav_files(corpus):
        assert (again / relative).read_bytes() == (corpus / relative).read_bytes(), relative
    marker = synthetic.MARKER_NAME
    assert (again / marker).read_bytes() == (corpus / marker).read_bytes()


@needs_espeak
def test_cli_generates_and_another_seed_differs(corpus, tmp_path):
    out = tmp_path / "seed1"
    result = run_cli("--out", str(out), "--seed", "1", "--speakers", "1", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    assert wav_files(out) == wav_files(corpus)
    for relative in wav_files(corpus):
        assert (out / relative).read_bytes() != (corpus / relative).read_bytes(), relative
    assert synthetic.read_marker(out)["seed"] == 1


@needs_espeak
def test_resume_recreates_only_missing_files(corpus, tmp_path):
    out = tmp_path / "resume"
    shutil.copytree(corpus, out)
    # Simulate an interrupted run: no marker, one file missing, its temporary file left behind.
    (out / synthetic.MARKER_NAME).unlink()
    missing = out / "Actor_01" / "03-01-06-02-01-02-01.wav"
    original = missing.read_bytes()
    missing.unlink()
    leftover = out / "Actor_01" / f".{missing.name}.12345.part"
    leftover.write_bytes(original[: len(original) // 2])
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}

    synthetic.generate(out, speakers=1, seed=0, workers=2, progress=False)

    assert missing.read_bytes() == original
    assert not leftover.exists()
    assert {p: p.stat().st_mtime_ns for p in before} == before  # the others were not rewritten
    assert wav_files(out) == wav_files(corpus)
    assert synthetic.read_marker(out) == synthetic.read_marker(corpus)


@needs_espeak
def test_ensure_corpus(corpus, tmp_path, monkeypatch):
    def no_generation(*args, **kwargs):
        raise AssertionError("ensure_corpus regenerated a complete corpus")

    monkeypatch.setattr(synthetic, "generate", no_generation)
    assert synthetic.ensure_corpus(corpus, speakers=1, seed=0) == corpus
    with pytest.raises(ValueError, match="seed 0"):
        synthetic.ensure_corpus(corpus, speakers=1, seed=1)
    with pytest.raises(ValueError, match="1 speakers"):
        synthetic.ensure_corpus(corpus, speakers=2, seed=0)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="seed 0"):
        synthetic.generate(corpus, speakers=1, seed=1, progress=False)


def test_unfinished_corpus_of_another_seed_is_refused(tmp_path):
    pending = {"generator_version": synthetic.GENERATOR_VERSION, "seed": 3, "speakers": 24}
    (tmp_path / synthetic.PENDING_NAME).write_text(json.dumps(pending))
    with pytest.raises(ValueError, match="unfinished"):
        synthetic.generate(tmp_path, speakers=1, seed=0, progress=False)


# ---- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["--speakers", "0"], ["--speakers", "25"], ["--workers", "0"], ["--small", "--speakers", "2"]],
)
def test_cli_bad_arguments(args, tmp_path):
    result = run_cli("--out", str(tmp_path / "x"), *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("python -m " + MODULE + ": error:")
    assert not (tmp_path / "x").exists()


def test_missing_espeak_raises_synthetic_unavailable(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # import now raises ImportError
    with pytest.raises(synthetic.SyntheticUnavailable) as caught:
        synthetic.generate(tmp_path / "out", speakers=1, progress=False)
    assert isinstance(caught.value, RuntimeError)
    message = str(caught.value)
    assert "\n" not in message
    assert "pip install -e '.[synthetic]'" in message and "GPL-3.0" in message
    assert not (tmp_path / "out").exists()

    assert synthetic.main(["--out", str(tmp_path / "out"), "--speakers", "1"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "GPL-3.0" in err


def test_cli_missing_espeak_exits_2_without_traceback(tmp_path):
    code = (
        "import sys; sys.modules['espeakng_loader'] = None; "
        f"from {MODULE} import main; sys.exit(main(sys.argv[1:]))"
    )
    result = run_cli("--out", str(tmp_path / "out"), "--speakers", "1", code=code)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install -e '.[synthetic]'" in lines[0], result.stderr
    assert os.listdir(tmp_path) == []


# ---- the corpus `synthetic` ------------------------------------------------------------------


def test_the_full_corpus_has_ravdess_counts_and_a_subset_its_own():
    from reslstm_jax.corpora import ravdess, synthetic_speech

    full = synthetic_speech.EXPECTED
    assert full.total == ravdess.EXPECTED.total == 1440
    assert dict(full.per_class) == dict(ravdess.EXPECTED.per_class)
    assert dict(full.per_speaker) == dict(ravdess.EXPECTED.per_speaker)
    small = synthetic_speech.expected_counts(4)
    assert small.total == 240 and set(small.per_speaker) == {"01", "02", "03", "04"}


def test_it_is_its_own_corpus_with_its_own_hash(corpus):
    """Same files, two corpora: `synthetic` records its generator and never hashes as RAVDESS;
    RAVDESS's protocols apply to it, and a real corpus keeps the plain hash of its ids."""
    import hashlib
    import warnings

    from reslstm_jax import corpora, protocols

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", corpora.CorpusCountWarning)
        as_ravdess = corpora.load("ravdess", corpus)
    fake = corpora.load("synthetic", corpus)  # exact counts: one speaker's corpus
    assert fake.corpus == "synthetic" and {u.corpus for u in fake.utterances} == {"synthetic"}
    assert fake.count_differences == [] and fake.skipped == []  # its marker is not a corpus file
    assert fake.ids == as_ravdess.ids and len(fake) == 60
    assert fake.source == {"description": "synthetic speech (RAVDESS layout, eSpeak NG)",
                           "layout": "ravdess", "generator": "reslstm_jax.corpora.synthetic",
                           "generator_version": synthetic.GENERATOR_VERSION, "seed": 0,
                           "speakers": 1}  # fmt: skip
    plain = hashlib.sha256("\n".join(sorted(as_ravdess.ids)).encode()).hexdigest()
    assert protocols.utterance_hash(as_ravdess) == plain
    assert protocols.utterance_hash(fake) != plain
    assert protocols.for_corpus("synthetic") == protocols.for_corpus("ravdess")
    assert protocols.applies_to("ravdess_paper", "synthetic")
    card = protocols.card("ravdess_paper", fake, [])  # one speaker: too few for real folds
    assert card["corpus"] == "synthetic" and card["source"]["seed"] == 0
    text = protocols.format_card(card)
    assert text.startswith("protocol ravdess_paper on synthetic")
    assert "synthetic speech (RAVDESS layout, eSpeak NG): generator version 1, seed 0" in text
    with pytest.raises(protocols.ProtocolError, match="is for emodb, not synthetic"):
        protocols.make_folds("emodb_loso", fake)


def test_a_tree_without_the_marker_is_not_a_synthetic_corpus(corpus, tmp_path):
    from reslstm_jax import corpora

    copy = tmp_path / "copy"
    shutil.copytree(corpus / "Actor_01", copy / "Actor_01")
    with pytest.raises(corpora.CorpusError, match="holds no completed synthetic corpus"):
        corpora.load("synthetic", copy)


@pytest.mark.parametrize(
    "module, args",
    [
        (
            "sweeps.run",
            ["--space", "hidden_sizes", "--out", "{tmp}/runs", "--wandb", "disabled"],
        ),  # fmt: skip
        ("reslstm_jax.train", ["--out", "{tmp}/run"]),
    ],
)
def test_commands_without_the_extra_say_so_in_one_line_and_write_nothing(tmp_path, module, args):
    """`pip install .` without `synthetic`, no corpus given and none generated yet: exit 2."""
    code = ("import runpy, sys; sys.modules['espeakng_loader'] = None; "
            f"sys.argv = [{module!r}, *sys.argv[1:]]; "
            f"runpy.run_module({module!r}, run_name='__main__')")  # fmt: skip
    env = {**os.environ, "RESLSTM_JAX_DATA": str(tmp_path / "data"), "WANDB_MODE": "disabled"}
    result = subprocess.run(
        [sys.executable, "-c", code, *(a.replace("{tmp}", str(tmp_path)) for a in args)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and "pip install -e '.[synthetic]'" in lines[0], result.stderr
    assert os.listdir(tmp_path) == []  # no study journal, no run directory, no corpus


def test_the_synthetic_corpus_as_a_cross_corpus_target(corpus, trained_run, feature_cache):
    """A run trained on the RAVDESS-named tone tree labels actor 01 of the synthetic corpus
    (its RAVDESS classes are the run's native ones): every fold x seed model, the card's
    hash, the fold ensembles."""
    from reslstm_jax import crosscorpus, protocols
    from reslstm_jax.corpora import load

    out = trained_run[0]
    card = json.loads((out / "card.json").read_text())
    target = crosscorpus.load_target("synthetic", corpus, card, cache_dir=feature_cache,
                                     workers=1, progress=False)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one actor: a subset of the corpus
        manifest = load("synthetic", corpus)
    assert (target.card["n_utterances"], target.card["n_speakers"]) == (len(manifest), 1)
    assert target.card["utterance_ids_sha256"] == protocols.utterance_hash(manifest)
    result = crosscorpus.evaluate(out, target)
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [(r["seed"], r["fold"]) for r in result["per_model"]] == [
        (r["seed"], r["fold"]) for r in runs]  # fmt: skip
    assert all(0 <= r["uar"] <= 1 for r in result["per_model"])
    assert len(result["ensemble"]) == len({r["seed"] for r in runs})
