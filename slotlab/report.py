"""A self-contained HTML report of one training run of any task (e.g. object discovery: paper Section 4.1 /
Table 1, Figure 3; set prediction: Section 4.2, Figures 5 and 6).

:func:`write_report` turns a run folder made by ``slotlab train`` into ``<run_dir>/report.html``: run summary
(with every resume of ``resumes.json`` and the overrides it applied, and the task presenter's summary of the
held-out scores), metrics tables (``results.json``, every ``slotlab eval`` row of ``evals.jsonl``, every
``eval_sweep-*.csv``), the learning curves its presenter names (e.g. loss, FG-ARI; loss, AP per distance threshold,
attention-mask ARI) drawn from every ``logs/version_*/metrics.csv`` (versions concatenated, so resumed runs give
one curve), the latest figures (the per-validation figures, the paper-figure PNGs of :mod:`slotlab.figures`, the
test-time sweep plot) and the full config. Images are embedded as base64 PNGs and the styling is inline, so the
page opens offline and can be mailed as one file. Missing pieces are skipped with a note.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from slotlab.atomic import write_text  # noqa: E402
from slotlab.config_limits import load_yaml_text, read_config_text  # noqa: E402
from slotlab.errors import ConfigError, UserError  # noqa: E402
from slotlab.eval_output import read_jsonl  # noqa: E402
from slotlab.plots import Panel, plot_learning_curves  # noqa: E402
from slotlab.report_config import MAX_DIFFERENCES, TrainedConfig, config_differences, sweep_hint, trained_config  # noqa: E402
from slotlab.tasks import TASKS, get_task, task_name  # noqa: E402
from slotlab.tasks.presenter import Presenter, format_number  # noqa: E402

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1100px;
       color: #222; line-height: 1.4; padding: 0 16px; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 8px 0 16px 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; } th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; border: 1px solid #ddd; padding: 10px; overflow-x: auto; font-size: 0.85em; }
.note { color: #8a6d3b; background: #fcf8e3; border: 1px solid #faebcc; padding: 6px 10px; margin: 6px 0; }
.sub { color: #666; font-size: 0.9em; } figure { margin: 12px 0 20px 0; }
figcaption { color: #555; font-size: 0.9em; margin-top: 4px; } img { max-width: 100%; image-rendering: pixelated; }
"""


class ReportError(UserError, ValueError):
    """A folder that is not a run folder `slotlab report` can describe (missing, or not made by slotlab train)."""


def _presenter_of(cfg: dict[str, Any]) -> Presenter:
    """The presenter of the config's task (of the default task when the config names an unknown one)."""
    name = task_name(cfg)
    return get_task(name if name in TASKS else task_name(None)).presenter


def is_run_dir(path: Path) -> bool:
    """A slotlab run folder has a config.yaml, a results.json, checkpoints/ or logs/."""
    return path.is_dir() and any((path / n).exists() for n in ("config.yaml", "results.json", "checkpoints", "logs"))


def write_report(run_dir: Path) -> Path:
    """Write ``<run_dir>/report.html`` and return its path. Raises ValueError if ``run_dir`` is not a run."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ReportError(f"{run_dir} does not exist; expected a run folder made by `slotlab train`")
    if not is_run_dir(run_dir):
        raise ReportError(
            f"{run_dir} is not a slotlab run folder (no config.yaml, results.json, checkpoints/ or logs/)"
        )
    file_text, file_cfg = _read_config(run_dir)
    trained = trained_config(run_dir)
    cfg = trained.config if trained.config is not None else file_cfg  # what the model was trained with
    results = _read_json(run_dir / "results.json")
    evaluation = _read_json(run_dir / "eval.json")  # written by slotlab before evals.jsonl existed
    sweeps = [(p.name, _read_csv(p) or []) for p in sorted(run_dir.glob("eval_sweep*.csv"))]

    parts = [f"<h1>slotlab run: {_e(run_dir.name)}</h1>"]
    written = f"{datetime.now():%Y-%m-%d %H:%M}"
    parts.append(f'<p class="sub">{_e(str(run_dir.resolve()))} &middot; report written {written}</p>')
    parts.append("<h2>Summary</h2>")
    parts.append(_summary(run_dir, cfg, results, _presenter_of(cfg)))
    parts.append("<h2>Metrics</h2>")
    parts.append(_metrics(results, evaluation, sweeps, read_jsonl(run_dir / "evals.jsonl"), sweep_hint(run_dir, cfg)))
    parts.append("<h2>Learning curves</h2>")
    parts.append(_curves(run_dir, _presenter_of(cfg)))
    parts.append("<h2>Figures</h2>")
    parts.append(_figures(run_dir, _presenter_of(cfg)))
    parts.append("<h2>Figures of each validation</h2>")
    parts.append(_figure_history(run_dir))
    parts.append("<h2>Config</h2>")
    parts.append(_config_section(trained, file_text, file_cfg))

    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>slotlab report: {_e(run_dir.name)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
    return write_text(run_dir / "report.html", page)


# ----------------------------------------------------------------------------------------------- reading


def _read_config(run_dir: Path) -> tuple[str, dict[str, Any]]:
    path = run_dir / "config.yaml"
    if not path.exists():
        return "", {}
    text = read_config_text(path)  # a regular UTF-8 file within the config size limit (ConfigError if not)
    try:
        data = load_yaml_text(text, str(path))  # within the limits on nesting and aliases (ConfigError if not)
    except ConfigError as e:
        if "not valid YAML" not in str(e):
            raise
        data = None
    return text, data if isinstance(data, dict) else {}


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {"error": f"could not read {path.name}"}
    return data if isinstance(data, dict) else {"value": data}


def _read_csv(path: Path) -> list[dict[str, str]] | None:
    if not path.exists():
        return None
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except (OSError, csv.Error):
        return []


def _version_number(path: Path) -> int:
    m = re.search(r"version_(\d+)", str(path))
    return int(m.group(1)) if m else -1


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """All rows of every ``logs/version_*/metrics.csv``, in version order, as floats (empty cells dropped).

    A resumed run starts a new version at the checkpoint's step; rows of earlier versions at or after that
    step (logged after the checkpoint that was resumed from) are dropped, so the result is one history.
    """
    rows: list[dict[str, float]] = []
    for path in sorted((run_dir / "logs").glob("version_*/metrics.csv"), key=_version_number):
        version_rows = []
        for raw in _read_csv(path) or []:
            row = {}
            for k, v in raw.items():
                if k is None or v in (None, ""):
                    continue
                try:
                    row[k] = float(v)
                except ValueError:
                    continue
            if "step" in row:
                version_rows.append(row)
        if version_rows:
            first = min(r["step"] for r in version_rows)
            rows = [r for r in rows if r["step"] < first] + version_rows
    return rows


def _resume_steps(run_dir: Path) -> list[float]:
    """The steps the run was resumed from: the checkpoints' steps recorded in resumes.json (the first logged row
    of a resumed session comes a logging interval later), else where each later metrics.csv version starts."""
    recorded = [r.get("from_step") for r in _read_json_list(run_dir / "resumes.json")]
    if steps := sorted({float(s) for s in recorded if isinstance(s, int) and not isinstance(s, bool)}):
        return steps
    starts = []
    for path in sorted((run_dir / "logs").glob("version_*/metrics.csv"), key=_version_number)[1:]:
        steps = [float(r["step"]) for r in _read_csv(path) or [] if r.get("step") not in (None, "")]
        if steps:
            starts.append(min(steps))
    return starts


# ---------------------------------------------------------------------------------------------- sections


def _summary(run_dir: Path, cfg: dict[str, Any], results: dict[str, Any] | None, presenter: Presenter) -> str:
    model = cfg.get("model", {}) if cfg else {}
    data = cfg.get("data", {}) if cfg else {}
    trainer = cfg.get("trainer", {}) if cfg else {}
    items: list[tuple[str, Any]] = [
        ("run (config name)", run_dir.name),
        ("task", cfg.get("task") if cfg else None),
        ("dataset", (results or {}).get("dataset") or data.get("name")),
        ("model", model.get("kind")),
        ("slots K / iterations T", f"{model.get('num_slots')} / {model.get('iters')}" if model else None),
        ("seed", cfg.get("seed") if cfg else None),
    ]
    for i, resume in enumerate(_read_json_list(run_dir / "resumes.json"), start=1):
        changes = resume.get("changes") or {}
        applied = "; ".join(f"{k} {_fmt(v[0])} -> {_fmt(v[1])}" for k, v in changes.items() if len(v) == 2)
        items.append((f"resume {i}", f"{resume.get('time')}: from step {resume.get('from_step')} of "
                      f"{resume.get('checkpoint')}" + (f"; applied {applied}" if applied else "")))  # fmt: skip
    if results:
        steps = results.get("global_step")
        max_steps = trainer.get("max_steps")
        items.append(("steps", f"{steps} of {max_steps}" if max_steps else steps))
        items.append(("wall time", _minutes(results.get("wall_seconds"))))
        items.append(("training time", _minutes(results.get("train_seconds"))))
        items.append(("accelerator / precision", f"{results.get('accelerator')} / {results.get('precision')}"))
        items += presenter.summary_items(results)
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(str(v))}</td></tr>" for k, v in items if v is not None)
    out = f"<table>{rows}</table>"
    if results is None:
        out += _note("no results.json (the run has not finished, or crashed): steps and wall time are unknown")
    if not cfg:
        out += _note("no readable config.yaml")
    return out


def _read_json_list(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


def _table(rows: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> str:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols and c not in drop]
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(_cell(r.get(c, "")) for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _metrics(
    results: dict[str, Any] | None,
    evaluation: dict[str, Any] | None,
    sweeps: list[tuple[str, list[dict[str, str]]]],
    records: list[dict[str, Any]],
    hint: str | None = None,
) -> str:
    parts = []
    if results is None:
        parts.append(_note("no results.json"))
    else:
        rows = "".join(f"<tr><th>{_e(str(k))}</th>{_cell(v)}</tr>" for k, v in results.items() if k != "test")
        parts.append(f"<h3>Final evaluation <span class='sub'>(results.json)</span></h3><table>{rows}</table>")
        if isinstance(test := results.get("test"), dict):
            rows = "".join(f"<tr><th>{_e(str(k))}</th>{_cell(v)}</tr>" for k, v in test.items())
            parts.append("<h3>Best checkpoint on the test split <span class='sub'>(chosen on the eval split; "
                         f"results.json, test)</span></h3><table>{rows}</table>")  # fmt: skip
    if records:
        parts.append(
            "<h3>slotlab eval <span class='sub'>(evals.jsonl: every evaluation, with its settings)</span></h3>"
            + _table(records, drop=("checkpoint",))
        )
    elif evaluation is not None:
        rows = "".join(f"<tr><th>{_e(str(k))}</th>{_cell(v)}</tr>" for k, v in evaluation.items())
        parts.append(f"<h3>slotlab eval <span class='sub'>(eval.json)</span></h3><table>{rows}</table>")
    else:
        parts.append(_note("no slotlab eval results (evals.jsonl)"))
    if not sweeps:
        parts.append(_note(f"no eval_sweep-*.csv (make one with: {hint})" if hint else "no eval_sweep-*.csv"))
    for name, sweep in sweeps:
        if not sweep:
            parts.append(_note(f"{name} is empty or unreadable"))
            continue
        parts.append(f"<h3>Test-time sweep <span class='sub'>({_e(name)})</span></h3>" + _table(sweep))
    return "\n".join(parts)


def curve_panels(presenter: Presenter, rows: list[dict[str, float]]) -> list[Panel]:
    """The task's learning curves, then one panel for every other held-out metric (``val/...``) the run logged, so
    that each logged held-out metric is drawn. A panel of alternatives (train/lr or the older lr-Adam) draws the
    first one logged; a panel of distinct metrics (AP per threshold) draws each."""
    logged = {c for r in rows for c in r}
    panels, drawn = [], set()
    for curve in presenter.curves:
        present = [c for c in curve.columns if c in logged]
        columns = tuple(present[:1] if curve.alternatives else present) or curve.columns[:1]
        band = curve.band if curve.band in logged else None
        panels.append(Panel(curve.title, columns, curve.ylabel, band, curve.log_scale))
        drawn.update(curve.columns, {curve.band} if curve.band else set())
    for col in sorted(c for c in logged if c.startswith("val/") and c not in drawn):
        panels.append(Panel(f"held-out {col.removeprefix('val/')}", (col,), col.removeprefix("val/")))
    return panels


def _curves(run_dir: Path, presenter: Presenter) -> str:
    """Every logged metric over optimizer steps (:func:`curve_panels`, :func:`slotlab.plots.plot_learning_curves`)."""
    rows = read_metrics(run_dir)
    if not rows:
        return _note("no logs/version_*/metrics.csv with data: no learning curves")
    resumes = _resume_steps(run_dir)
    panels = curve_panels(presenter, rows)
    fig = plot_learning_curves(rows, panels, resumes)
    out = _img_tag(_fig_png(fig), "learning curves")
    plt.close(fig)
    note = f" Dashed lines: resumed at steps {', '.join(str(int(s)) for s in resumes)}." if resumes else ""
    shown = ", ".join(c for p in panels for c in p.columns if any(c in r for r in rows))
    out += f"<p class='sub'>From {len(rows)} logged rows of logs/version_*/metrics.csv ({_e(shown)}).{note}</p>"
    missing = [p.title for p in panels if not any(c in r for r in rows for c in p.columns)]
    if missing:
        out += _note(f"not logged yet: {', '.join(missing)}")
    return out


def _figures(run_dir: Path, presenter: Presenter) -> str:
    fig_dir = run_dir / "figures"
    wanted: list[tuple[Path, str]] = []
    what = {"latest.png": "image | reconstruction | combined mask | slots", "attention_latest.png": "attention"}
    latest = [fig_dir / n for n in what if (fig_dir / n).exists()]
    wanted += [(p, f"latest validation figure: {what[p.name]}") for p in latest]
    attention = sorted(fig_dir.glob("attention_step_*.png"))
    if attention:
        wanted.append((attention[-1], f"attention per iteration ({attention[-1].name})"))
    for name in presenter.figure_names:
        if (fig_dir / name).exists():
            wanted.append((fig_dir / name, presenter.captions.get(name, name)))
    named = {p for p, _ in wanted}
    for p in sorted(fig_dir.glob("*.png")) if fig_dir.is_dir() else []:
        if p not in named and not re.match(r"(attention_)?step_\d+\.png$", p.name):
            wanted.append((p, p.name))
    for sweep_png in sorted(run_dir.glob("eval_sweep*.png")):
        wanted.append((sweep_png, f"test-time sweep ({sweep_png.name})"))
    parts = []
    if not latest:
        parts.append(_note("no figures/latest.png (no validation has run yet, or trainer.figure_every_val is off)"))
    if presenter.figure_names and not any((fig_dir / n).exists() for n in presenter.figure_names):
        names = ", ".join(presenter.figure_names)
        parts.append(_note(f"no paper figure PNGs ({names}): make them with slotlab figures {run_dir}"))
    for path, caption in wanted:
        try:
            data = path.read_bytes()
        except OSError:
            parts.append(_note(f"could not read {path.name}"))
            continue
        parts.append(f"<figure>{_img_tag(data, caption)}<figcaption>{_e(caption)}</figcaption></figure>")
    return "\n".join(parts)


def _config_section(trained: TrainedConfig, file_text: str, file_cfg: dict[str, Any]) -> str:
    """The config the model was trained with (stored in its checkpoint), a note listing where config.yaml
    differs from it, and config.yaml itself when it differs or the checkpoint's cannot be read."""
    if trained.config is None:
        why = f"the config stored in the checkpoint could not be read ({trained.problem})"
        if not file_text:
            return _note(f"{why}; no config.yaml in the run folder")
        return _note(f"{why}: showing config.yaml, which may have been edited after training") + (
            f"<pre>{_e(file_text)}</pre>"
        )
    where = f"{trained.checkpoint.parent.name}/{trained.checkpoint.name}" if trained.checkpoint else "?"
    step = f", step {trained.step}" if trained.step is not None else ""
    text = yaml.safe_dump(json.loads(json.dumps(trained.config, default=str)), sort_keys=False)
    parts = [f"<h3>Trained config <span class='sub'>(stored in {_e(where)}{step})</span></h3><pre>{_e(text)}</pre>"]
    if not file_text:
        parts.append(_note("no config.yaml in the run folder"))
        return "\n".join(parts)
    diffs = config_differences(trained.config, file_cfg)
    if diffs:
        shown = "; ".join(
            f"{k}: {_fmt(a)} in the checkpoint, {_fmt(b)} in config.yaml" for k, a, b in diffs[:MAX_DIFFERENCES]
        )
        more = f" (and {len(diffs) - MAX_DIFFERENCES} more)" if len(diffs) > MAX_DIFFERENCES else ""
        parts.append(
            _note(f"config.yaml differs from the config the model was trained with ({where}): {shown}{more}. "
                  "The trained config above is what the numbers in this report come from.")
        )  # fmt: skip
        parts.append(f"<details><summary>config.yaml</summary><pre>{_e(file_text)}</pre></details>")
    return "\n".join(parts)


HISTORY_MAX = 12  # validations whose figures the report embeds (evenly spaced, first and last included)
_HISTORY_KINDS = {"step": "slots", "attention_step": "attention"}


def _figure_history(run_dir: Path) -> str:
    """The figures of each validation (figures/step_*.png, attention_step_*.png), oldest first; at most
    HISTORY_MAX validations, evenly spaced, so that the page stays small."""
    by_step: dict[int, list[tuple[str, Path]]] = {}
    for p in sorted((run_dir / "figures").glob("*step_*.png")):
        m = re.fullmatch(r"(step|attention_step)_(\d+)\.png", p.name)
        if m:
            by_step.setdefault(int(m.group(2)), []).append((_HISTORY_KINDS[m.group(1)], p))
    if not by_step:
        return _note("no figures/step_*.png: no validation has run yet, or trainer.figure_every_val is off")
    steps = sorted(by_step)
    if len(steps) > HISTORY_MAX:
        picks = {round(i * (len(steps) - 1) / (HISTORY_MAX - 1)) for i in range(HISTORY_MAX)}
        shown = [steps[i] for i in sorted(picks)]
    else:
        shown = steps
    parts = [
        f"<p class='sub'>{len(shown)} of {len(steps)} validations (steps {steps[0]} to {steps[-1]}), oldest first; "
        "every one is in the run's figures/ folder.</p>"
    ]
    for step in shown:
        for kind, path in sorted(by_step[step]):
            try:
                data = path.read_bytes()
            except OSError:
                parts.append(_note(f"could not read {path.name}"))
                continue
            caption = f"step {step}: {kind} ({path.name})"
            parts.append(f"<figure>{_img_tag(data, caption)}<figcaption>{_e(caption)}</figcaption></figure>")
    return "<details open><summary>figures of each validation</summary>" + "\n".join(parts) + "</details>"


# --------------------------------------------------------------------------------------------- helpers


def _fig_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _img_tag(png: bytes, alt: str) -> str:
    mime = "image/gif" if png[:6] in (b"GIF87a", b"GIF89a") else "image/png"  # an animated figure, or a PNG
    return f'<img alt="{_e(alt)}" src="data:{mime};base64,{base64.b64encode(png).decode("ascii")}">'


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


_fmt = format_number


def _cell(v: Any) -> str:
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return f"<td>{_e(v)}</td>"
        v = int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return f'<td class="num">{_e(_fmt(v))}</td>'
    if isinstance(v, (dict, list)):
        return f"<td>{_e(json.dumps(v))}</td>"
    return f"<td>{_e(str(v))}</td>"


def _minutes(seconds: Any) -> str | None:
    if not isinstance(seconds, (int, float)):
        return None
    return f"{seconds / 60:.1f} min ({seconds / 3600:.2f} h)"
