"""The conversion report: one row per produced variant, shown by the CLI and stored in report.json."""

from __future__ import annotations


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def conversion_table(report: dict) -> str:
    header = ["variant", "size MB", "params M", "GMACs", "ORT ms (med)", "ORT ms (p95)", "EPE vs FP32", "EPE vs GT"]
    rows = [header]
    for v in report.get("variants", []):
        lat = v.get("latency") or {}
        rows.append([
            v.get("name", "?"),
            _fmt(v.get("size_mb"), ".2f"),
            _fmt(v.get("params_m"), ".2f"),
            _fmt(v.get("gmacs"), ".2f"),
            _fmt(lat.get("median_ms"), ".1f"),
            _fmt(lat.get("p95_ms"), ".1f"),
            _fmt(v.get("epe_vs_fp32"), ".3f"),
            _fmt(v.get("epe_vs_gt"), ".3f"),
        ])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def conversion_report_text(result) -> str:
    """The table and, for split artifacts, the feature-caching line: the CLI prints it on stdout
    (it is the command's result, not progress)."""
    from converters.caching import caching_summary

    lines = [conversion_table(result.report)]
    if result.report.get("feature_caching"):
        lines.append(caching_summary(result.report["feature_caching"]))
    return "\n".join(lines)
