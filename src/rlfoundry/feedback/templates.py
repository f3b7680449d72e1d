"""Jinja2 templates of the feedback app, kept in Python so they ship with the package.

Autoescaping is on for every template: prompts and responses are untrusted text and
are always rendered escaped (``white-space: pre-wrap`` keeps their line breaks). The
only inline script and style carry a per-response CSP nonce.
"""

from __future__ import annotations

from jinja2 import DictLoader, Environment
from markupsafe import Markup

from rlfoundry.feedback.labels import MAX_REASON, MAX_REWRITE
from rlfoundry.feedback.render import code_css, markdown
from rlfoundry.feedback.templates_admin import ADMIN_TEMPLATES
from rlfoundry.feedback.templates_review import REVIEW_TEMPLATES

BASE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}rlfoundry feedback{% endblock %}</title>
<style nonce="{{ nonce }}">
:root { --fg:#1d2330; --muted:#5f6b7a; --line:#d9dee5; --bg:#f5f7fa; --card:#fff;
        --accent:#2f6fed; --accent-bg:#e8f0fe; --warn:#b42318; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
       color:var(--fg); background:var(--bg); }
header { display:flex; gap:16px; align-items:center; padding:10px 24px; background:#1d2330;
         color:#fff; }
header .brand { font-weight:600; }
header .grow { flex:1; }
header a, header button.link { color:#cfd8e3; text-decoration:none; background:none; border:0;
         font:inherit; cursor:pointer; padding:0; }
main { max-width:1200px; margin:0 auto; padding:20px 24px 40px; }
h1 { font-size:20px; margin:0 0 12px; }
h2 { font-size:16px; margin:24px 0 8px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 16px; }
.muted { color:var(--muted); }
.text { white-space:pre-wrap; overflow-wrap:anywhere; }
.prompt { border-left:4px solid var(--accent); margin-bottom:14px; }
.label { font-size:12px; font-weight:600; letter-spacing:.04em; text-transform:uppercase;
         color:var(--muted); margin-bottom:4px; }
.grid { display:grid; gap:14px; grid-template-columns:repeat(auto-fit,minmax(320px,1fr)); }
.resp.current { outline:3px solid var(--accent); }
.progress { display:flex; align-items:center; gap:10px; }
.bar { width:160px; height:8px; background:#3a4356; border-radius:4px; overflow:hidden; }
.bar > span { display:block; height:100%; background:#6ea0ff; }
details.guide { margin-bottom:14px; }
details.guide .text { margin-top:6px; }
details.guide summary { cursor:pointer; font-weight:600; }
.choices { display:flex; flex-wrap:wrap; gap:10px; margin:16px 0 10px; }
.choices label { display:flex; align-items:center; gap:8px; padding:9px 14px; border:1px solid var(--line);
                 border-radius:8px; background:var(--card); cursor:pointer; user-select:none; }
.choices input { accent-color:var(--accent); }
.choices label:has(input:checked) { border-color:var(--accent); background:var(--accent-bg); }
kbd { display:inline-block; min-width:20px; padding:0 5px; border:1px solid var(--line);
      border-bottom-width:2px; border-radius:4px; font:12px ui-monospace,monospace; text-align:center;
      background:#fafbfc; color:var(--fg); }
textarea, input[type=password], input[type=text] { width:100%; font:inherit; padding:8px 10px;
      border:1px solid var(--line); border-radius:6px; }
button.primary { background:var(--accent); color:#fff; border:0; border-radius:6px; padding:9px 18px;
                 font:inherit; font-weight:600; cursor:pointer; }
.row { display:flex; gap:12px; align-items:center; margin-top:12px; }
.error { color:var(--warn); font-weight:600; margin:8px 0; }
table { border-collapse:collapse; width:100%; background:var(--card); }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); }
th { font-size:13px; color:var(--muted); }
.stars { display:flex; gap:6px; margin-top:10px; }
.stars label { padding:4px 10px; }
.ranking { font-weight:600; }
.narrow { max-width:420px; margin:40px auto; }
.text.md { white-space:normal; }
.md > :first-child { margin-top:0; } .md > :last-child { margin-bottom:0; }
.md pre { background:#f6f8fa; border:1px solid var(--line); border-radius:6px; padding:8px 10px;
          overflow-x:auto; white-space:pre; }
.md code { font:13px ui-monospace,SFMono-Regular,Menlo,monospace; }
.md table { width:auto; } .md blockquote { border-left:3px solid var(--line); margin:0; padding-left:10px; }
.turn { margin-bottom:10px; } .turn .label { text-transform:none; }
.turn.role-assistant { border-left:4px solid #8a63d2; padding-left:8px; }
.turn.role-user { border-left:4px solid var(--accent); padding-left:8px; }
button.secondary { background:var(--card); color:var(--fg); border:1px solid var(--line); border-radius:6px;
                   padding:8px 14px; font:inherit; cursor:pointer; }
textarea.rewrite { min-height:180px; font:13px ui-monospace,monospace; }
.votes td, .votes th { vertical-align:top; }
.token { font:13px ui-monospace,monospace; background:#fffbe6; padding:8px; border:1px solid #f0d98c;
         border-radius:6px; overflow-wrap:anywhere; }
nav.sub a { margin-right:14px; }
{{ code_css }}
</style>
</head>
<body>
<header>
  <span class="brand">rlfoundry feedback</span>
  {% block headerinfo %}{% endblock %}
  <span class="grow"></span>
  {% if who %}
    <span>{{ who.name }}</span>
    <a href="/">projects</a>
    <a href="/mine">my judgments</a>
    {% if who.is_reviewer or who.is_admin %}<a href="/review">review</a>{% endif %}
    {% if who.is_admin %}<a href="/admin">admin</a>{% endif %}
    <form method="post" action="/logout"><input type="hidden" name="csrf" value="{{ who.csrf }}">
      <button class="link" type="submit">log out</button></form>
  {% endif %}
</header>
<main>
{% block main %}{% endblock %}
</main>
{% block script %}{% endblock %}
</body>
</html>
"""

LOGIN = """{% extends "base.html" %}
{% block main %}
<div class="card narrow">
  <h1>Log in</h1>
  <p class="muted">Paste the token you were given (<code>rlfoundry feedback add-annotator</code>).</p>
  {% if error %}<p class="error">{{ error }}</p>{% endif %}
  <form method="post" action="/login">
    <input type="password" name="token" autocomplete="off" autofocus aria-label="token">
    <div class="row"><button class="primary" type="submit">Log in</button></div>
  </form>
</div>
{% endblock %}
"""

HOME = """{% extends "base.html" %}
{% block main %}
<h1>Projects</h1>
{% if not projects %}<p class="muted">No projects yet.</p>{% endif %}
<table>
<tr><th>project</th><th>task</th><th>your progress</th><th>project</th><th></th></tr>
{% for p in projects %}
<tr>
  <td>{{ p.name }}</td><td>{{ p.kind }}</td>
  <td>{{ p.progress.done }} / {{ p.progress.total }} done</td>
  <td class="muted">{{ p.progress.project_judgments }} / {{ p.progress.project_target }} judgments</td>
  <td><a href="/p/{{ p.id }}">{% if p.progress.done < p.progress.total %}annotate{% else %}view{% endif %}</a></td>
</tr>
{% endfor %}
</table>
{% endblock %}
"""

DONE = """{% extends "base.html" %}
{% block main %}
<div class="card"><h1>All done in {{ project.name }}</h1>
<p>Nothing is left for you in this project ({{ progress.done }} judged). Thank you!</p>
<p><a href="/">Back to projects</a></p></div>
{% endblock %}
"""

TASK = """{% extends "base.html" %}
{% block title %}{{ project.name }} - rlfoundry feedback{% endblock %}
{% block headerinfo %}
  <span class="muted">{{ project.name }}</span>
  <span class="progress" id="progress"><span class="bar"><span id="bar"></span></span>
    <span>{{ progress.done }} / {{ progress.total }} done</span></span>
{% endblock %}
{% block main %}
<details class="guide card" open>
  <summary>Guidelines</summary>
  <div class="text md">{{ (project.guidelines or default_guidelines[project.kind]) | md }}</div>
</details>
{% include "prompt.html" %}
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="/p/{{ project.id }}/submit" id="task">
<input type="hidden" name="csrf" value="{{ who.csrf }}">
<input type="hidden" name="assignment_id" value="{{ assignment_id }}">
<input type="hidden" name="active_ms" id="active_ms" value="">
<div class="grid">
{% for r in responses %}
  <div class="card resp" data-letter="{{ r.letter }}">
    <div class="label">Response {{ r.letter }}</div>
    <div class="text md">{{ r.text | md }}</div>
    {% if project.kind == "rewrite" %}
    <textarea class="source" hidden readonly>{{ r.text }}</textarea>
    <div class="choices"><label><input type="radio" name="choice" value="{{ r.letter }}" required>
      <kbd>{{ loop.index }}</kbd> {{ r.letter }} is better: rewrite it</label></div>
    {% elif project.kind == "rank" %}
    <div class="row"><label>Rank <select name="rank_{{ r.letter }}" class="rank">
      <option value="">-</option>
      {% for k in range(1, responses|length + 1) %}<option value="{{ k }}">{{ k }}</option>{% endfor %}
    </select></label></div>
    {% elif project.kind == "rate" %}
    <div class="choices stars">
      {% for v in range(1, 6) %}<label><input type="radio" name="rating_{{ r.letter }}" value="{{ v }}" required> {{ v }}</label>{% endfor %}
    </div>
    {% endif %}
  </div>
{% endfor %}
</div>
{% if project.kind == "compare" %}
<div class="choices">
  <label><input type="radio" name="choice" value="A" required><kbd>1</kbd> A is better</label>
  <label><input type="radio" name="choice" value="B"><kbd>2</kbd> B is better</label>
  <label><input type="radio" name="choice" value="tie"><kbd>3</kbd> Tie</label>
  <label><input type="radio" name="choice" value="both_bad"><kbd>4</kbd> Both bad</label>
</div>
{% elif project.kind == "rank" %}
<p>Ranking: <span class="ranking" id="ranking">-</span></p>
{% elif project.kind == "rewrite" %}
<label class="label" for="rewrite">Your rewrite of the better response</label>
<textarea name="rewrite" id="rewrite" class="rewrite" maxlength="{{ max_rewrite }}" required
  placeholder="Choose the better response; its text appears here to edit."></textarea>
{% endif %}
<label class="label" for="reason">Reason (optional; needed to flag)</label>
<textarea name="reason" id="reason" rows="2" maxlength="{{ max_reason }}" placeholder="Why? (optional)"></textarea>
<div class="row"><button class="primary" type="submit" id="submit">Submit <kbd>Enter</kbd></button>
  <button class="secondary" type="submit" id="skip" name="action" value="skip"
    formaction="/p/{{ project.id }}/mark" formnovalidate>Skip</button>
  <button class="secondary" type="submit" id="flag" name="action" value="flag"
    formaction="/p/{{ project.id }}/mark" formnovalidate>Flag for review</button>
  <span class="muted">Shortcuts: {{ shortcuts[project.kind] | safe }}</span></div>
</form>
{% endblock %}
{% block script %}
<script nonce="{{ nonce }}">
(() => {
  const kind = {{ project.kind | tojson }};
  const form = document.getElementById("task");
  const total = {{ progress.total | tojson }}, done = {{ progress.done | tojson }};
  document.getElementById("bar").style.width = (total ? 100 * done / total : 100) + "%";
  // Time spent: count only while the page is visible.
  let active = 0, since = document.hidden ? null : performance.now();
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && since !== null) { active += performance.now() - since; since = null; }
    else if (!document.hidden && since === null) { since = performance.now(); }
  });
  form.addEventListener("submit", () => {
    if (since !== null) { active += performance.now() - since; since = performance.now(); }
    document.getElementById("active_ms").value = Math.round(active);
  });
  const cards = [...document.querySelectorAll(".resp")];
  const letters = cards.map(c => c.dataset.letter);
  let order = [], current = 0;
  function showRanking() {
    const el = document.getElementById("ranking");
    if (el) el.textContent = order.length ? order.join(" > ") : "-";
    cards.forEach(c => {
      const sel = c.querySelector("select.rank");
      const k = order.indexOf(c.dataset.letter);
      if (sel) sel.value = k < 0 ? "" : String(k + 1);
    });
  }
  function focusCard(i) {
    current = Math.max(0, Math.min(cards.length - 1, i));
    cards.forEach((c, k) => c.classList.toggle("current", k === current));
  }
  if (kind === "rate") focusCard(0);
  // rewrite: choosing a response puts its text in the box, unless the box was edited
  const box = document.getElementById("rewrite");
  let prefilled = "";
  document.querySelectorAll("input[name=choice]").forEach(input => input.addEventListener("change", () => {
    if (!box || !input.checked || (box.value !== "" && box.value !== prefilled)) return;
    const src = input.closest(".resp").querySelector("textarea.source");
    box.value = prefilled = src.value;
  }));
  document.querySelectorAll("select.rank").forEach(sel => sel.addEventListener("change", () => {
    const ranks = cards.map(c => [Number(c.querySelector("select.rank").value) || 99, c.dataset.letter]);
    order = ranks.filter(r => r[0] < 99).sort((a, b) => a[0] - b[0]).map(r => r[1]);
    document.getElementById("ranking").textContent = order.length ? order.join(" > ") : "-";
  }));
  document.addEventListener("keydown", (e) => {
    const tag = e.target.tagName;
    if (tag === "SELECT") return;
    if (tag === "TEXTAREA" || (tag === "INPUT" && e.target.type !== "radio")) {
      if (e.key === "Enter" && e.target.id === "reason" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "Enter") { e.preventDefault(); form.requestSubmit(); return; }
    const n = Number(e.key);
    if (kind === "compare" && n >= 1 && n <= 4) {
      form.querySelectorAll("input[name=choice]")[n - 1].checked = true;
    } else if (kind === "rewrite" && n >= 1 && n <= letters.length) {
      const input = cards[n - 1].querySelector("input[name=choice]");
      input.checked = true; input.dispatchEvent(new Event("change", {bubbles: true}));
    } else if (kind === "rank" && n >= 1 && n <= letters.length) {
      const l = letters[n - 1];
      if (!order.includes(l)) order.push(l);
      if (order.length === letters.length - 1) order.push(letters.find(x => !order.includes(x)));
      showRanking();
    } else if (kind === "rank" && e.key === "Backspace") {
      order.pop(); showRanking(); e.preventDefault();
    } else if (kind === "rate" && n >= 1 && n <= 5) {
      const input = cards[current].querySelector(`input[value="${n}"]`);
      input.checked = true;
      focusCard(current + 1);
    } else if (kind === "rate" && (e.key === "ArrowRight" || e.key === "ArrowDown")) {
      focusCard(current + 1);
    } else if (kind === "rate" && (e.key === "ArrowLeft" || e.key === "ArrowUp")) {
      focusCard(current - 1);
    }
  });
})();
</script>
{% endblock %}
"""

PROMPT = """{% if messages %}
<div class="card prompt" id="prompt"><div class="label">Conversation</div>
{% for m in messages %}<div class="turn role-{{ m.role if m.role in ("user", "assistant", "system") else "other" }}">
  <div class="label">{{ m.role }}</div><div class="text md">{{ m.content | md }}</div></div>{% endfor %}
</div>
{% else %}
<div class="card prompt"><div class="label">Prompt</div><div class="text md" id="prompt">{{ prompt | md }}</div></div>
{% endif %}
"""

MESSAGE = """{% extends "base.html" %}
{% block main %}<div class="card"><h1>{{ title }}</h1><p>{{ message }}</p>
<p><a href="/">Back to projects</a></p></div>{% endblock %}
"""

DEFAULT_GUIDELINES = {
    "compare": (
        "Read the prompt, then both responses. Choose the response that is more helpful, "
        "correct and harmless. Choose Tie when they are equally good, Both bad when neither "
        "is acceptable. Length alone is not quality."
    ),
    "rank": (
        "Order the responses from best (rank 1) to worst: most helpful, correct and "
        "harmless first. Every response gets a different rank."
    ),
    "rate": (
        "Rate each response from 1 (unusable) to 5 (excellent) on its own merits: "
        "helpfulness, correctness and harmlessness."
    ),
    "rewrite": (
        "Choose the better response; its text appears in the rewrite box. Edit it into the "
        "answer you would want the model to give (fix errors, cut padding, keep what is "
        "right), then submit. Your rewrite becomes a training example."
    ),
}

SHORTCUTS = {
    "compare": "<kbd>1</kbd> A better, <kbd>2</kbd> B better, <kbd>3</kbd> tie, "
    "<kbd>4</kbd> both bad, <kbd>Enter</kbd> submit (also from the reason box; "
    "<kbd>Shift</kbd>+<kbd>Enter</kbd> for a new line).",
    "rank": "press <kbd>1</kbd>..<kbd>K</kbd> for responses A..K from best to worst, "
    "<kbd>Backspace</kbd> undo, <kbd>Enter</kbd> submit.",
    "rate": "<kbd>1</kbd>-<kbd>5</kbd> rate the highlighted response and move to the next, "
    "arrows move, <kbd>Enter</kbd> submit.",
    "rewrite": "<kbd>1</kbd>/<kbd>2</kbd> choose the response to rewrite, <kbd>Enter</kbd> in "
    "the reason box submits (the rewrite box takes new lines).",
}


def environment() -> Environment:
    env = Environment(
        loader=DictLoader(
            {
                "base.html": BASE,
                "login.html": LOGIN,
                "home.html": HOME,
                "done.html": DONE,
                "task.html": TASK,
                "message.html": MESSAGE,
                "prompt.html": PROMPT,
                **ADMIN_TEMPLATES,
                **REVIEW_TEMPLATES,
            }
        ),
        autoescape=True,
    )
    env.globals["default_guidelines"] = DEFAULT_GUIDELINES
    env.globals["shortcuts"] = SHORTCUTS
    env.globals["max_reason"] = MAX_REASON
    env.globals["max_rewrite"] = MAX_REWRITE
    env.globals["code_css"] = Markup(code_css())
    env.filters["md"] = markdown
    env.globals["fmt"] = lambda x: "-" if x is None else f"{x:.3f}"
    return env
