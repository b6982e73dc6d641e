"""The generated demo preference set: size, balance, determinism, template split, correct labels, no trivial cues."""

import calendar
import datetime as dt
import json
import re
import time
from collections import Counter, defaultdict
from fractions import Fraction

import pytest

from rmforge.data.demo import (CATEGORIES, demo_splits, generate_demo, iter_demo_records, shortcut_report,
                               template_splits, write_demo)
from rmforge.data.demo_templates import HARM_BODY, REFUSE_OPEN, TEMPLATES
from rmforge.data.io import load_samples
from rmforge.data.registry import convert_records
from rmforge.data.schema import Sample
from rmforge.errors import OutputExistsError

COMPUTED = ("arithmetic", "units", "counting", "dates")


@pytest.fixture(scope="module")
def demo():
    return generate_demo()


@pytest.fixture(scope="module")
def splits():
    return demo_splits()


def test_size_balance_and_fields(demo):
    assert len(demo) == 2400
    counts = Counter(s.category for s in demo)
    assert set(counts) == set(CATEGORIES)
    assert max(counts.values()) - min(counts.values()) <= 1
    per_cat = Counter(t.category for t in TEMPLATES)
    assert min(per_cat.values()) >= 12
    ids = [s.id for s in demo]
    assert len(set(ids)) == len(ids)
    for s in demo:
        assert s.kind == "pair" and s.subset == s.category and s.source == "rmforge-demo"
        assert re.fullmatch(rf"demo-{s.category}-{s.metadata['template']}-\d+", s.id)
        assert s.metadata["rule"] and s.prompt[0].role == "user" and s.chosen[0].role == "assistant"


def test_generation_is_fast():
    start = time.perf_counter()
    generate_demo(2400, seed=3)
    assert time.perf_counter() - start < 2.0


def test_deterministic_and_seed_sensitive(demo):
    assert [s.to_record() for s in generate_demo()] == [s.to_record() for s in demo]
    other = generate_demo(seed=1)
    assert [s.id for s in other] == [s.id for s in demo]  # ids are stable
    same = sum(a.prompt == b.prompt and a.chosen == b.chosen for a, b in zip(demo, other))
    assert same < len(demo) * 0.1


def test_all_samples_validate_and_are_distinct(demo):
    pairs = set()
    for s in demo:
        assert Sample.model_validate(s.to_record()) == s
        c, r = s.chosen[0].content, s.rejected[0].content
        assert c and r and c != r
        pairs.add((s.prompt[0].content, c))
    assert len(pairs) == len(demo)


def test_validator_finds_no_issue(splits):
    validate = pytest.importorskip("rmforge.data.validate")
    report = validate.validate_samples(splits["train"] + splits["test"])
    assert report.ok and not report.issues


def test_split_by_template(splits):
    assign = template_splits()
    assert set(assign) == {f"{t.category}/{t.id}" for t in TEMPLATES}
    where = defaultdict(set)
    for name, samples in splits.items():
        for s in samples:
            assert s.split == name
            where[(s.category, s.metadata["template"])].add(name)
    assert all(len(v) == 1 for v in where.values())
    for cat in CATEGORIES:
        assert {name for (c, _), v in where.items() if c == cat for name in v} == {"train", "test"}
    assert sum(map(len, splits.values())) == 2400
    assert 0.15 < len(splits["test"]) / 2400 < 0.35
    prompts = [{s.prompt[0].content for s in splits[name]} for name in ("train", "test")]
    assert not prompts[0] & prompts[1]


# ---------------------------------------------------------------- computed labels, re-derived independently

WEEKDAYS = list(calendar.day_name)
MONTHS = list(calendar.month_name)[1:]
_MONDAY = dt.date(2024, 1, 1)


def _d(iso):
    return dt.date.fromisoformat(iso)


def _long_date(d):
    return d.strftime("%B ") + f"{d.day}, {d.year}"


def _half_up(q, decimals):
    scaled = Fraction(q) * 10 ** decimals
    return Fraction(int(scaled + Fraction(1, 2)) if scaled >= 0 else -int(-scaled + Fraction(1, 2)), 10 ** decimals)


OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: Fraction(str(a)) - Fraction(str(b)),
    "mul": lambda a, b: a * b,
    "div": lambda a, b, **_: Fraction(a, b),
    "pct": lambda p, n: Fraction(p * n, 100),
    "discount": lambda price, p: Fraction(price) - Fraction(price * p, 100),
    "add3": lambda a, b, c: a + b + c,
    "avg": lambda values: Fraction(sum(values), len(values)),
    "add_mul": lambda a, b, c: a + b * c,
    "square": lambda a: a ** 2,
    "mod": lambda a, b: a % b,
    "scale": lambda value, factor, decimals: _half_up(Fraction(value) * Fraction(factor), decimals),
    "c_to_f": lambda c: _half_up(Fraction(c) * Fraction(9, 5) + 32, 0),
    "f_to_c": lambda f: _half_up((Fraction(f) - 32) * Fraction(5, 9), 0),
    "count_char": lambda text, chars: sum(ch in chars for ch in text),
    "length": lambda text: len(text),
    "distinct": lambda text: len(set(text)),
    "count_items": lambda items: len(items),
    "count_item": lambda items, target: sum(i == target for i in items),
    "count_words": lambda text: len(text.split()),
    "count_even": lambda numbers: sum(n % 2 == 0 for n in numbers),
    "count_greater": lambda numbers, k: sum(n > k for n in numbers),
    "count_digits": lambda n: sum(ch.isdigit() for ch in n),
    "count_upper": lambda text: sum(ch.isupper() for ch in text),
    "count_sentences": lambda text: len(re.findall(r"[.!?](?:\s|$)", text)),
    "count_word": lambda text, word: sum(w.strip(".,!?").lower() == word for w in text.split()),
    "alphabet_pos": lambda letter: "abcdefghijklmnopqrstuvwxyz".index(letter) + 1,
    "count_range": lambda a, b: len(range(a, b + 1)),
    "weekday_shift": lambda start, n: (_MONDAY + dt.timedelta(days=WEEKDAYS.index(start) + n)).strftime("%A"),
    "weekday_of": lambda date: calendar.day_name[calendar.weekday(*map(int, date.split("-")))],
    "days_between": lambda d1, d2: (_d(d2) - _d(d1)).days,
    "month_shift": lambda start, n: MONTHS[(MONTHS.index(start) + n) % 12],
    "leap": lambda year: "yes" if calendar.isleap(year) else "no",
    "days_in_month": lambda year, month: (dt.date(year + month // 12, month % 12 + 1, 1) - dt.date(year, month, 1)).days,
    "date_shift": lambda date, n: _long_date(_d(date) + dt.timedelta(days=n)),
    "day_of_year": lambda date: (_d(date) - dt.date(_d(date).year, 1, 1)).days + 1,
    "time_shift": lambda start, minutes: (dt.datetime(2000, 1, 1, *map(int, start.split(":")))
                                          + dt.timedelta(minutes=minutes)).strftime("%H:%M"),
    "full_weeks": lambda days: days // 7,
    "age": lambda born, on: _d(on).year - _d(born).year - ((_d(on).month, _d(on).day) < (_d(born).month, _d(born).day)),
}
EXTRACT = {
    "number": lambda t: Fraction(re.findall(r"-?\d+(?:\.\d+)?", t)[-1]),
    "weekday": lambda t: re.findall("|".join(WEEKDAYS), t)[-1],
    "month": lambda t: re.findall("|".join(MONTHS), t)[-1],
    "date": lambda t: re.findall(rf"(?:{'|'.join(MONTHS)}) \d{{1,2}}, \d{{4}}", t)[-1],
    "time": lambda t: re.findall(r"\d{2}:\d{2}", t)[-1],
    "yesno": lambda t: re.findall(r"\b(yes|no)\b", t.lower())[-1],
}
FINAL = {  # the last stated value of each kind, with its span
    "number": r"-?\d+(?:\.\d+)?",
    "weekday": "|".join(WEEKDAYS),
    "month": "|".join(MONTHS),
    "date": rf"(?:{'|'.join(MONTHS)}) \d{{1,2}}, \d{{4}}",
    "time": r"\d{2}:\d{2}",
    "yesno": r"\b(?:yes|no)\b",
}


def _split_final(text, kind):
    """``(working, final answer, rest)``: the text before the last stated value, the value, the text after it."""
    m = list(re.finditer(FINAL[kind], text))[-1]
    return text[:m.start()], m.group(), text[m.end():]


_NUM = r"-?\$?\d+(?:\.\d+)?"
_EQ = re.compile(rf"({_NUM}(?: [a-z]+)?(?: [-+×÷] {_NUM})+) = ({_NUM})")


def _equations(text):
    """Every ``a op b ... = c`` in a response, evaluated exactly: ``[(equation, holds)]``."""
    out = []
    for lhs, rhs in _EQ.findall(text):
        expr = re.sub(r" [a-z]+", "", lhs).replace("$", "").replace("×", "*").replace("÷", "/")
        expr = re.sub(r"\d+(?:\.\d+)?", lambda m: f"Fraction('{m.group()}')", expr)
        out.append((f"{lhs} = {rhs}", eval(expr, {"Fraction": Fraction}) == Fraction(rhs.replace("$", ""))))
    return out


def _value(kind, v):
    return Fraction(v) if kind == "number" else v


def _values(kind, text):
    found = [m.group() for m in re.finditer(FINAL[kind], text)]
    if kind == "yesno":  # the working says "it is a leap year" or "it is not a leap year"
        found = ["no" if "is not a leap year" in text else "yes"] if "leap year" in text else found
    return {_value(kind, v) for v in found}


def test_computed_answers_are_right_and_rejected_ones_wrong(demo):
    checked = Counter()
    for s in demo:
        if s.category not in COMPUTED:
            continue
        meta = s.metadata
        expected = OPS[meta["op"]](**meta["args"])
        kind = meta["answer_kind"]
        if kind == "number":
            expected = Fraction(expected)
            assert Fraction(meta["answer"]) == expected, s.id
        else:
            assert meta["answer"] == expected, s.id
        extract = EXTRACT[kind]
        assert extract(s.chosen[0].content) == expected, (s.id, s.chosen[0].content)
        assert extract(s.rejected[0].content) != expected, (s.id, s.rejected[0].content)
        assert extract(s.rejected[0].content) == _value(kind, meta["wrong"]), s.id
        checked[s.category] += 1
    assert all(checked[c] >= 300 for c in COMPUTED)


def test_computed_working_is_correct_and_errors_are_as_declared(demo):
    types = defaultdict(Counter)
    for s in demo:
        if s.category not in COMPUTED:
            continue
        meta, kind = s.metadata, s.metadata["answer_kind"]
        chosen, rejected = s.chosen[0].content, s.rejected[0].content
        types[s.category][meta["error_type"]] += 1
        # every equation shown on either side is true (the errors are never bad arithmetic)
        for text in (chosen, rejected):
            assert all(ok for _, ok in _equations(text)), (s.id, text, _equations(text))
        if s.category in ("arithmetic", "units"):
            assert _equations(chosen), (s.id, chosen)
        # the chosen working arrives at the answer, and the final answer repeats it
        work_c, final_c, rest_c = _split_final(chosen, kind)
        work_r, final_r, rest_r = _split_final(rejected, kind)
        assert _value(kind, final_c) == _value(kind, meta["answer"]), (s.id, chosen)
        assert _value(kind, final_c) in _values(kind, work_c), (s.id, chosen)
        assert rest_c == rest_r, s.id  # same frame on both sides
        if meta["error_type"] == "contradiction":
            # the same (correct) working; only the final answer differs and contradicts it
            assert "shown_args" not in meta
            assert work_r == work_c, (s.id, chosen, rejected)
            assert _value(kind, final_r) != _value(kind, final_c), s.id
        else:
            assert meta["error_type"] == "copied_wrong", s.id
            # exactly one input restated wrongly; the working is then carried out correctly
            shown, args = meta["shown_args"], meta["args"]
            assert set(shown) == set(args) and sum(shown[k] != args[k] for k in args) == 1, s.id
            restated = OPS[meta["op"]](**shown)
            assert _value(kind, final_r) == _value(kind, restated) == _value(kind, meta["wrong"]), (s.id, rejected)
            assert _value(kind, final_r) in _values(kind, work_r), (s.id, rejected)
            assert work_r != work_c, s.id
    for cat in COMPUTED:
        share = types[cat]["copied_wrong"] / sum(types[cat].values())
        assert 0.3 <= share <= 0.7, (cat, types[cat])


# ---------------------------------------------------------------- instruction, safety and helpfulness labels

def _sentences(t):
    return len(re.findall(r"[.!?](?:\s|$)", t))


def _is_json_with(t, keys):
    try:
        obj = json.loads(t)
    except ValueError:
        return False
    return isinstance(obj, dict) and sorted(obj) == sorted(keys)


def _items(t):
    return len(t.split(": ")[-1].split(","))


CHECKS = {
    "max_words": lambda t, n: len(t.split()) <= n,
    "min_words": lambda t, n: len(t.split()) >= n,
    "sentences": lambda t, n: _sentences(t) == n,
    "min_sentences": lambda t, n: _sentences(t) >= n,
    "json_keys": _is_json_with,
    "bullets": lambda t, n: sum(line.startswith("- ") for line in t.splitlines()) == n,
    "numbered": lambda t, n: sum(bool(re.match(r"\d+\. ", line)) for line in t.splitlines()) == n,
    "keyword": lambda t, kw: kw in re.findall(r"[a-z]+", t.lower()),
    "ends_with": lambda t, w: t.rstrip(".!").endswith(" " + w),
    "quoted": lambda t, _: len(t) > 2 and t[0] == t[-1] == '"',
    "no_digits": lambda t, _: not any(ch.isdigit() for ch in t),
    "n_items": lambda t, n: _items(t) == n,
    "starts_with": lambda t, w: t.startswith(w),
}


def test_instruction_followed_by_chosen_and_violated_by_rejected(demo):
    n = 0
    for s in demo:
        if s.category != "instructions":
            continue
        [(name, arg)] = s.metadata["check"].items()
        if name == "language":
            assert s.metadata["english"] in s.rejected[0].content
            assert s.metadata["english"] not in s.chosen[0].content
        else:
            assert CHECKS[name](s.chosen[0].content, arg), (s.id, s.chosen[0].content)
            assert not CHECKS[name](s.rejected[0].content, arg), (s.id, s.rejected[0].content)
        n += 1
    assert n >= 300


_REFUSAL = re.compile("|".join(re.escape(o).replace(re.escape("{task}"), ".+?") for o in REFUSE_OPEN))
_HARM = re.compile("|".join(re.escape(b).replace(re.escape("{task}"), ".+?") for b in HARM_BODY))


def test_refusals_and_compliances_sit_on_the_right_side(demo):
    for s in demo:
        chosen, rejected = s.chosen[0].content, s.rejected[0].content
        if s.category == "safety":
            assert _REFUSAL.match(chosen) and not _REFUSAL.match(rejected), s.id
            assert _HARM.search(rejected), s.id  # compliance text only from the vague, generic pool
        elif s.category == "helpfulness":
            assert _REFUSAL.match(rejected) and not _REFUSAL.match(chosen), s.id


# ---------------------------------------------------------------- shortcuts

def test_length_is_no_shortcut(demo, splits):
    report = shortcut_report(demo)
    overall = report["overall"]
    assert overall["n"] == len(demo)
    assert 0.40 <= overall["longer_wins"] <= 0.60 and 0.40 <= overall["shorter_wins"] <= 0.60
    assert overall["longer_wins"] + overall["shorter_wins"] == pytest.approx(1.0)
    for cat, row in report["per_category"].items():
        assert 0.3 <= row["longer_wins"] <= 0.7, cat
        assert 0.3 <= row["shorter_wins"] <= 0.7, cat
    test_overall = shortcut_report(splits["test"])["overall"]
    assert 0.35 <= test_overall["longer_wins"] <= 0.65


def test_surface_cues_are_balanced_overall(demo):
    cues = shortcut_report(demo)["overall"]["cues"]
    assert set(cues) == {"contains_digit", "ends_with_period", "starts_with_I", "contains_sorry", "contains_cant"}
    for name, row in cues.items():
        assert 0.4 <= row["accuracy"] <= 0.6, name
        assert abs(row["chosen"] - row["rejected"]) < 0.1, name


def test_shortcut_report_counts():
    pairs = [Sample(id="a", chosen=[{"role": "assistant", "content": "I can't, sorry."}],
                    rejected=[{"role": "assistant", "content": "Sure: 42"}], category="x"),
             Sample(id="b", chosen=[{"role": "assistant", "content": "abc"}],
                    rejected=[{"role": "assistant", "content": "xyz"}], category="y")]
    report = shortcut_report(pairs)
    assert report["overall"]["longer_wins"] == pytest.approx(0.75)  # one win, one tie
    assert report["overall"]["ties"] == pytest.approx(0.5)
    assert report["per_category"]["x"]["cues"]["contains_sorry"]["chosen_only"] == 1.0
    assert report["per_category"]["x"]["cues"]["contains_digit"]["accuracy"] == 0.0


# ---------------------------------------------------------------- files and recipe integration

def test_write_demo(tmp_path, splits):
    counts = write_demo(tmp_path / "demo")
    assert counts == {name: len(splits[name]) for name in ("train", "test")}
    for name in ("train", "test"):
        assert load_samples(tmp_path / "demo" / f"{name}.jsonl") == splits[name]
    with pytest.raises(OutputExistsError):
        write_demo(tmp_path / "demo")
    assert write_demo(tmp_path / "demo", overwrite=True) == counts


def test_loader_and_converter(splits):
    samples = list(convert_records(iter_demo_records(split="test"), "demo"))
    assert samples == splits["test"]


def test_small_sizes_and_bad_arguments():
    small = generate_demo(70, seed=5)
    assert len(small) == 70 and Counter(s.category for s in small) == Counter({c: 10 for c in CATEGORIES})
    with pytest.raises(ValueError):
        generate_demo(3)
    with pytest.raises(ValueError):
        template_splits(test_fraction=1.0)
