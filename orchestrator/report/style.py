"""The report page's CSS, inlined into the page so the file stands alone."""

STYLE = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #111827;
  margin: 0 auto; padding: 16px 24px 40px; max-width: 1240px; background: #fafafa; }
h1 { font-size: 24px; margin: 8px 0; display: flex; align-items: center; gap: 12px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #e5e7eb; padding-bottom: 4px; }
h2 small { font-weight: normal; color: #6b7280; font-size: 13px; }
h3 { font-size: 15px; margin: 18px 0 6px; color: #374151; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.desc { color: #374151; margin: 4px 0; }
.meta, .note, footer { color: #6b7280; font-size: 13px; }
.warn { background: #fef3c7; border: 1px solid #f59e0b; padding: 8px 12px; border-radius: 6px; }
.badge { font-size: 13px; font-weight: bold; padding: 3px 10px; border-radius: 999px; color: #fff; }
.badge.pass { background: #16a34a; } .badge.fail { background: #dc2626; } .badge.none { background: #6b7280; }
table { border-collapse: collapse; background: #fff; margin: 6px 0; width: 100%; }
th, td { border: 1px solid #e5e7eb; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; font-size: 13px; }
table.hosts { width: auto; }
td ul { margin: 0; padding-left: 16px; font-size: 12px;
  font-family: ui-monospace, Menlo, Consolas, monospace; }
tr.fail td { background: #fef2f2; }
tr.fault td { background: #fffbeb; font-weight: 600; }
tr.error td { color: #b91c1c; }
table.events td:first-child, table.events th:first-child { width: 80px; text-align: right;
  font-family: ui-monospace, Menlo, Consolas, monospace; }
.scroll { overflow-x: auto; background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; padding: 4px; }
svg { display: block; max-width: none; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; font-size: 12px; color: #374151; margin: 4px 0 8px; }
.key { display: inline-flex; align-items: center; gap: 6px; }
.swatch { display: inline-block; width: 26px; height: 0; }
.lane-swatch { display: inline-block; width: 6px; height: 14px; }
.band { display: inline-block; width: 26px; height: 10px; background: #fef3c7; border: 1px solid #f59e0b; }
details > summary { cursor: pointer; list-style: revert; }
details > summary h2 { display: inline; border: none; }
ul.outcomes, ul.notes { margin: 6px 0; }
footer { margin-top: 32px; border-top: 1px solid #e5e7eb; padding-top: 8px; }
"""
