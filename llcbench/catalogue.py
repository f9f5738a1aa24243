"""Case files (TOML) -> checked ``Case`` objects, and cases -> truth and targets.

The file format is a public contract: users bring their own files. A file is
a list of ``[[case]]`` tables. Common keys: ``id`` (unique), ``family``,
optional ``n``, ``seed``, ``noise_std``, ``expect_lambda`` (rational string),
``expect_multiplicity``, ``note``, and a truth the case brings itself
(``lambda``, ``multiplicity``, ``source``: see :func:`case_truth`); every other
key belongs to the family (see ``llcbench families``). Every mistake is
reported as one line naming the file, the case and the field.
"""

from __future__ import annotations

import copy
import json
import math
import re
import tomllib
import unicodedata
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Optional

from . import limits
from .case import COMMON_FIELDS, COMMON_KEYS, Case  # noqa: F401  (COMMON_FIELDS: re-exported)
from .errors import TruthError, UserError
from .families import FAMILIES
from .families.base import Family
from .target import Target
from .truth import Truth

# COMMON_FIELDS, COMMON_KEYS: the keys every case takes, whatever its family (they live with Case).


def builtin_files() -> list[Path]:
    """The catalogue shipped with llcbench (``cases/*.toml``, installed as ``llcbench.cases``), in name order."""
    root = resources.files("llcbench.cases")
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".toml"))


def suite_names() -> list[str]:
    """Names of the case suites shipped besides the catalogue (``cases/suites/NAME.toml``)."""
    root = resources.files("llcbench.cases") / "suites"
    return sorted(p.name[: -len(".toml")] for p in root.iterdir() if p.name.endswith(".toml"))


def suite_file(name: str) -> Path:
    """The file of a shipped suite (``holdout``: the out-of-sample cases, never used for tuning)."""
    names = suite_names()
    if name not in names:
        raise UserError(f"--suite {name}: unknown suite; shipped: {', '.join(names)}")
    return Path(str(resources.files("llcbench.cases") / "suites" / f"{name}.toml"))


def suite_config(name: str, estimator: str) -> dict[str, str]:
    """The sampler settings a shipped suite carries for ``estimator`` (its ``[estimator.NAME]`` table),
    as ``--set``-style text values (so a suite and the command line give the same config, and a
    ``--set`` of the same key overrides it); {} where the suite has none."""
    path = suite_file(name)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    table = _estimator_tables(data, str(path)).get(estimator, {})
    return {key: _setting_text(value) for key, value in table.items()}


def _setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _estimator_tables(data: dict, name: str) -> dict[str, dict]:
    """The file's ``[estimator.NAME]`` tables, checked: a table of tables of scalars."""
    tables = data.get("estimator", {})
    if not isinstance(tables, dict):
        raise UserError(f"{name}: 'estimator' must be a table of [estimator.NAME] tables")
    for est, table in tables.items():
        if not isinstance(table, dict):
            raise UserError(f"{name}: estimator '{est}': expected an [estimator.{est}] table of settings")
        for key, value in table.items():
            if not isinstance(value, (bool, int, float, str)):
                raise UserError(f"{name}: estimator '{est}': field '{key}': expected a number, string or boolean")
    return tables


def _where(file: str, case_id: Optional[str], field: Optional[str] = None) -> str:
    parts = [file]
    if case_id is not None:
        parts.append(f"case '{case_id}'")
    if field is not None:
        parts.append(f"field '{field}'")
    return ": ".join(parts)


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        try:  # an integer beyond a float's range is no number here
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        except OverflowError:
            return False
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str_list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "int_list":
        return isinstance(value, list) and all(_type_ok("int", v) for v in value)
    if kind == "float_list":
        return isinstance(value, list) and all(_type_ok("float", v) for v in value)
    raise AssertionError(f"unknown field type {kind}")


_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "str_list": "a list of strings",
    "int_list": "a list of integers",
    "float_list": "a list of numbers",
}


def _id_problem(case_id: str) -> str:
    """Why a case id cannot be shown as it is in tables and figures (too long, control characters,
    bidirectional overrides, other invisible format characters), or ''."""
    if len(case_id) > limits.MAX_ID_CHARS:
        return f"longer than {limits.MAX_ID_CHARS} characters"
    for ch in case_id:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            return (f"holds the character U+{ord(ch):04X} ({unicodedata.name(ch, 'unnamed')}); ids are printable "
                    "characters only (no control codes, line breaks or direction overrides)")
    return ""


def _shown(value: Any) -> str:
    """A value for an error line: repr, cut short."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else f"an integer of {len(str(abs(value)))} digits"
    return text if len(text) <= 60 else text[:59] + "…"


def _parse_fraction(text: Any) -> Fraction:
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError("expected a rational string such as \"3/2\"")
    shown = str(text) if isinstance(text, str) or abs(text) < 10**limits.MAX_RATIONAL_CHARS else "a huge integer"
    if len(shown) > limits.MAX_RATIONAL_CHARS:
        raise ValueError(f"{shown[:20]}…: longer than {limits.MAX_RATIONAL_CHARS} characters")
    exponent = re.search(r"[eE]\s*([+-]?\d+)", shown)
    if exponent and abs(int(exponent.group(1))) > limits.MAX_RATIONAL_EXPONENT:
        raise ValueError(f"{shown!r}: exponent beyond ±{limits.MAX_RATIONAL_EXPONENT}")
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{text!r} is not a rational number such as \"3/2\"") from None


def parse_case(entry: Any, file: str, index: int) -> Case:
    """Check one ``[[case]]`` table and fill in defaults."""
    if not isinstance(entry, dict):
        raise UserError(f"{file}: entry {index + 1}: expected a [[case]] table")
    case_id = entry.get("id")
    if not isinstance(case_id, str) or not case_id.strip():
        raise UserError(f"{_where(file, f'#{index + 1}', 'id')}: missing or not a non-empty string")
    bad_id = _id_problem(case_id)
    if bad_id:
        raise UserError(f"{_where(file, f'#{index + 1}', 'id')}: {bad_id}")
    where = lambda field=None: _where(file, case_id, field)  # noqa: E731

    family_name = entry.get("family")
    if family_name is None:
        raise UserError(f"{where('family')}: missing")
    if not isinstance(family_name, str):
        raise UserError(f"{where('family')}: expected a string, got {_shown(family_name)}")
    if family_name not in FAMILIES:
        raise UserError(f"{where('family')}: {FAMILIES.unknown(family_name)}")  # or its plugin's error
    family: Family = FAMILIES[family_name]

    for key in entry:
        if key not in COMMON_KEYS and key not in family.fields:
            known = sorted(COMMON_KEYS | set(family.fields))
            raise UserError(f"{where(key)}: unknown field for family {family_name!r}; known: {', '.join(known)}")

    params: dict[str, Any] = {}
    for name, spec in family.fields.items():
        if name not in entry:
            if spec.required:
                raise UserError(f"{where(name)}: missing (required by family {family_name!r})")
            value = spec.default
            params[name] = list(value) if isinstance(value, list) else value
            continue
        value = entry[name]
        if not _type_ok(spec.type, value):
            raise UserError(f"{where(name)}: expected {_TYPE_WORDS[spec.type]}, got {_shown(value)}")
        if isinstance(value, list):
            limits.check(len(value), limits.MAX_LIST, f"{where(name)}: the number of entries")
        if spec.type == "float":
            value = float(value)
        if spec.check is not None:
            try:
                spec.check(value)
            except ValueError as exc:
                raise UserError(f"{where(name)}: {exc}") from None
        params[name] = value
    try:
        family.check(params)
        dim = family.dim(params)
    except ValueError as exc:
        field, _, reason = str(exc).partition(": ")
        if field in family.fields and reason:
            raise UserError(f"{where(field)}: {reason}") from None
        raise UserError(f"{where()}: {exc}") from None

    def common(key: str, kind: str, default: Any, positive: bool = False) -> Any:
        if key not in entry:
            return default
        value = entry[key]
        if not _type_ok(kind, value):
            raise UserError(f"{where(key)}: expected {_TYPE_WORDS[kind]}, got {_shown(value)}")
        if positive and value <= 0:
            raise UserError(f"{where(key)}: must be > 0, got {value!r}")
        return float(value) if kind == "float" else value

    limits.check(dim, limits.MAX_DIM, f"{where()}: d (the number of parameters)")
    fixed_n = family.n_for(params)
    n = common("n", "int", fixed_n or family.default_n, positive=True)
    if fixed_n is not None and n != fixed_n:
        raise UserError(f"{where('n')}: family {family_name!r} sets n = {fixed_n} from the other fields; leave n out")
    if n < 3:
        raise UserError(f"{where('n')}: must be at least 3 (nβ* = n / log n), got {n}")
    limits.check(n, limits.MAX_N, where("n"))
    seed = common("seed", "int", 0)
    if not 0 <= seed < limits.SEED_LIMIT:
        raise UserError(f"{where('seed')}: must be >= 0 and below 2**63 (a signed 64-bit integer), got {_shown(seed)}")
    noise_std = common("noise_std", "float", family.default_noise_std)
    if "noise_std" in entry and family.default_noise_std is None:
        raise UserError(f"{where('noise_std')}: family {family_name!r} has no noise")
    if noise_std is not None and noise_std < 0:
        raise UserError(f"{where('noise_std')}: must be >= 0 (0 = noiseless labels), got {noise_std!r}")
    note = common("note", "str", "")

    expect_lambda = None
    if "expect_lambda" in entry:
        try:
            expect_lambda = _parse_fraction(entry["expect_lambda"])
        except ValueError as exc:
            raise UserError(f"{where('expect_lambda')}: {exc}") from None
    expect_m = common("expect_multiplicity", "int", None, positive=True)
    asserted = _asserted_truth(entry, where, expect_lambda, expect_m)

    # fields a family added later leave the case's key (and so its runs' keys) alone at their defaults
    unkeyed = tuple(sorted(k for k, f in family.fields.items()
                           if f.key_default and k in params and params[k] == f.default))
    return Case(
        id=case_id,
        family=family_name,
        params=params,
        unkeyed=unkeyed,
        n=n,
        seed=seed,
        noise_std=noise_std,
        expect_lambda=expect_lambda,
        expect_multiplicity=expect_m,
        **asserted,
        note=note,
        file=file,
    )


def _asserted_truth(entry: dict, where, expect_lambda, expect_m) -> dict:
    """The Case fields of a truth the entry states itself (``lambda``, ``multiplicity``, ``source``)."""
    if "lambda" not in entry:
        for key in ("multiplicity", "source"):
            if key in entry:
                raise UserError(f"{where(key)}: belongs to an asserted truth: give lambda too")
        return {}
    try:
        lam = _parse_fraction(entry["lambda"])
    except ValueError as exc:
        raise UserError(f"{where('lambda')}: {exc}") from None
    if lam <= 0:
        raise UserError(f"{where('lambda')}: a learning coefficient is > 0, got {lam}")
    if expect_lambda is not None or expect_m is not None:
        key = "expect_lambda" if expect_lambda is not None else "expect_multiplicity"
        raise UserError(f"{where(key)}: the case asserts its truth (lambda); expect_* cross-checks a computed one: "
                        "give one of them")
    mult = entry.get("multiplicity")
    if mult is not None and (isinstance(mult, bool) or not isinstance(mult, int) or mult < 1):
        raise UserError(f"{where('multiplicity')}: expected an integer >= 1, got {mult!r}")
    source = entry.get("source")
    if not isinstance(source, str) or not source.strip():
        raise UserError(f"{where('source')}: an asserted lambda needs a non-empty source (where the value comes from)")
    return {"asserted_lambda": str(lam), "asserted_multiplicity": mult, "asserted_source": source.strip()}


def load_file(path: str | Path) -> list[Case]:
    """Read and check one case file."""
    path = Path(path)
    name = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"{name}: no such case file") from None
    except OSError as exc:
        raise UserError(f"{name}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = text_line(path, exc.start)
        raise UserError(f"{name}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}, "
                        f"line {line}); TOML files are UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{name}: malformed TOML: {exc}") from None
    extra = [k for k in data if k not in ("case", "estimator")]
    if extra:
        raise UserError(f"{name}: unexpected top-level key {extra[0]!r}; a case file holds [[case]] tables "
                        "(and, in a suite, [estimator.NAME] sampler settings) only")
    _estimator_tables(data, name)
    entries = data.get("case", [])
    if not isinstance(entries, list):
        raise UserError(f"{name}: 'case' must be an array of tables ([[case]])")
    cases = [parse_case(entry, name, i) for i, entry in enumerate(entries)]
    _check_unique(cases)
    return cases


def text_line(path: Path, offset: int) -> int:
    """The line number (from 1) of a byte offset in a file."""
    return path.read_bytes()[:offset].count(b"\n") + 1


def _check_unique(cases: Iterable[Case]) -> None:
    seen: dict[str, Case] = {}
    for case in cases:
        if case.id in seen:
            first = seen[case.id]
            raise UserError(f"{_where(case.file, case.id, 'id')}: duplicate id (first defined in {first.file})")
        seen[case.id] = case


def load_catalogue(files: Optional[Iterable[str | Path]] = None, builtin: bool = True) -> list[Case]:
    """The built-in catalogue (unless ``builtin=False``) plus the given files; ids must be unique."""
    paths = list(builtin_files()) if builtin else []
    paths += [Path(f) for f in files or []]
    cases = [case for path in paths for case in load_file(path)]
    _check_unique(cases)
    return cases


# the family's truth per (family, parameters): the engine runs once per potential in a process, however
# often a run's planning, target and record ask for it (a TruthError is kept and raised again)
_TRUTHS: dict[tuple[str, str], Any] = {}


def _family_truth(case: Case) -> Truth:
    key = (case.family, json.dumps(case.params, sort_keys=True, default=str))
    if key not in _TRUTHS:
        try:
            _TRUTHS[key] = FAMILIES[case.family].truth(case.params)
        except TruthError as exc:
            _TRUTHS[key] = exc
    found = _TRUTHS[key]
    if isinstance(found, TruthError):
        raise type(found)(*found.args)
    return found


def case_truth(case: Case) -> Truth:
    """The truth of a case: computed (once per potential, :func:`_family_truth`), and cross-checked
    against ``expect_*``.

    A case that states its truth (``lambda``, ``multiplicity``, ``source``) gets it as kind
    "asserted" only where the engine cannot certify one; where the engine can, a disagreement is
    an error naming the field and an agreement is the certified truth itself."""
    try:
        truth = _family_truth(case)
    except TruthError as exc:
        if case.asserted_lambda is None:
            raise TruthError(f"{_where(case.file, case.id)}: {exc}") from None
        m = case.asserted_multiplicity
        return Truth(lam=Fraction(case.asserted_lambda), multiplicity=1 if m is None else m, kind="asserted",
                     source=f"asserted by the case: {case.asserted_source}"
                            + ("" if m is not None else " (multiplicity not stated: taken as 1)")
                            + f"; the engine cannot certify it: {' '.join(str(exc).split())}")
    if case.asserted_lambda is not None:
        if truth.lam != Fraction(case.asserted_lambda):
            raise UserError(f"{_where(case.file, case.id, 'lambda')}: the case asserts λ = {case.asserted_lambda} "
                            f"but the engine certifies λ = {truth.lam} ({truth.source})")
        if case.asserted_multiplicity is not None and truth.multiplicity != case.asserted_multiplicity:
            raise UserError(f"{_where(case.file, case.id, 'multiplicity')}: the case asserts m = "
                            f"{case.asserted_multiplicity} but the engine certifies m = {truth.multiplicity} "
                            f"({truth.source})")
    if case.expect_lambda is not None and truth.lam != case.expect_lambda:
        raise UserError(
            f"{_where(case.file, case.id, 'expect_lambda')}: computed λ = {truth.lam} but the file expects {case.expect_lambda}"
        )
    if case.expect_multiplicity is not None and truth.multiplicity != case.expect_multiplicity:
        raise UserError(
            f"{_where(case.file, case.id, 'expect_multiplicity')}: computed m = {truth.multiplicity} "
            f"but the file expects {case.expect_multiplicity}"
        )
    return truth


def case_dim(case: Case) -> int:
    return FAMILIES[case.family].dim(case.params)


def case_run_data_bytes(case: Case, config, device: str = "cpu") -> int:
    """Bytes of the copies of the case's data a run under ``config`` on ``device`` holds in host memory
    at its peak (0 where its family does not count them), without building data."""
    return FAMILIES[case.family].run_data_bytes(case, config, device)


def build_target(case: Case) -> Target:
    """Build the target of a case (generates its data from ``case.seed``); truth cross-checked."""
    return _built(case, lambda family: family.target(case))


def support_target(case: Case) -> Target:
    """The target an estimator's ``supports`` is asked about when runs are planned
    (``Family.support_target``: for deep linear networks, everything but the data)."""
    return _built(case, lambda family: family.support_target(case))


def _built(case: Case, build) -> Target:
    truth = case_truth(case)
    # the family's target() asks its own truth(): a copy answers the checked one (asserted where the
    # engine refuses), so that the target carries it without computing it again
    family = copy.copy(FAMILIES[case.family])
    family.truth = lambda params: truth
    try:
        return build(family)
    except TruthError as exc:
        raise TruthError(f"{_where(case.file, case.id)}: {exc}") from None


def select(cases: list[Case], ids: Optional[list[str]] = None, family: Optional[str] = None) -> list[Case]:
    """Filter by id (exact, or a prefix ending in '/') and family; unknown ids are an error."""
    if family is not None and family not in FAMILIES:
        raise UserError(f"--family {family}: {FAMILIES.unknown(family)}")
    out = [c for c in cases if family is None or c.family == family]
    if ids:
        by_id = {c.id: c for c in out}
        chosen: list[Case] = []
        for wanted in ids:
            if wanted in by_id:
                chosen.append(by_id[wanted])
                continue
            matches = [c for c in out if wanted.endswith("/") and c.id.startswith(wanted)]
            if not matches:
                raise UserError(f"--case {wanted}: no such case (see 'llcbench cases')")
            chosen.extend(matches)
        seen: set[str] = set()
        out = [c for c in chosen if not (c.id in seen or seen.add(c.id))]
    return out
