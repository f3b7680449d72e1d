"""Templates of the admin's pages (autoescaped like every other)."""

from __future__ import annotations

STATS = """<p>{{ st.items_complete }} / {{ st["items"] }} items complete, {{ st.judgments }} judgments,
   {{ st.gold_items }} gold items; {{ st.skips }} skipped, {{ st.flags }} flagged,
   {{ st.reviewed }} reviewed.
   Percent agreement <b>{{ fmt(st.agreement.percent_agreement) }}</b>,
   Krippendorff's alpha ({{ st.agreement.alpha_level }}) <b>{{ fmt(st.agreement.krippendorff_alpha) }}</b>
   over {{ st.agreement.units }} units.</p>
<table>
<tr><th>annotator</th><th>done</th><th>vs majority</th><th>gold accuracy</th><th>median active s</th><th>median wall s</th></tr>
{% for name, a in st.annotators.items() %}
<tr><td>{{ name }}</td><td>{{ a.done }}</td>
<td>{{ fmt(a.vs_majority.agreement) }} <span class="muted">(n={{ a.vs_majority.n }})</span></td>
<td>{{ fmt(a.gold_accuracy) }} <span class="muted">(n={{ a.gold_seen }})</span></td>
<td>{{ a.median_active_s if a.median_active_s is not none else "-" }}</td>
<td>{{ a.median_wall_s if a.median_wall_s is not none else "-" }}</td></tr>
{% endfor %}
</table>
{% if st.agreement.pairwise_kappa %}
<h2>Cohen's kappa per pair</h2>
<table><tr><th>annotators</th><th>kappa</th><th>agreement</th><th>shared units</th></tr>
{% for k in st.agreement.pairwise_kappa %}
<tr><td>{{ k.a }} / {{ k.b }}</td><td>{{ fmt(k.kappa) }}</td><td>{{ fmt(k.agreement) }}</td><td>{{ k.n }}</td></tr>
{% endfor %}</table>
{% endif %}
"""

ADMIN = """{% extends "base.html" %}
{% block main %}
<nav class="sub"><a href="/admin">projects</a><a href="/admin/people">people and tokens</a>
  <a href="/review">review</a></nav>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<h1>New project</h1>
<form method="post" action="/admin/projects" class="card" id="new-project">
<input type="hidden" name="csrf" value="{{ who.csrf }}">
<div class="row"><label>Name <input type="text" name="name" required maxlength="200"></label>
<label>Task <select name="kind">{% for k in kinds %}<option value="{{ k }}">{{ k }}</option>{% endfor %}</select></label>
<label>Overlap <input type="text" name="overlap" value="2" size="3"></label>
<label>Gold every <input type="text" name="gold_every" value="0" size="3"></label></div>
<label class="label" for="guidelines">Guidelines (markdown, optional)</label>
<textarea name="guidelines" id="guidelines" rows="3"></textarea>
<div class="row"><button class="primary" type="submit">Create project</button></div>
</form>
<h1>Agreement and progress</h1>
{% for st in stats %}
<h2><a href="/admin/p/{{ st.id }}">{{ st.project }}</a> <span class="muted">({{ st.kind }}, overlap {{ st.overlap }})</span></h2>
{% include "admin_stats.html" %}
{% endfor %}
{% endblock %}
"""

ADMIN_PROJECT = """{% extends "base.html" %}
{% block main %}
<nav class="sub"><a href="/admin">projects</a><a href="/admin/people">people and tokens</a>
  <a href="/review/p/{{ project.id }}">review queue</a></nav>
<h1>{{ project.name }} <span class="muted">({{ project.kind }}, overlap {{ project.overlap }},
  gold every {{ project.gold_every }})</span></h1>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
{% if notice %}<p class="notice" role="status" id="notice">{{ notice }}</p>{% endif %}
{% include "admin_stats.html" %}
<h2>Import items</h2>
<form method="post" action="/admin/p/{{ project.id }}/import" enctype="multipart/form-data" class="card" id="import">
<input type="hidden" name="csrf" value="{{ who.csrf }}">
<p class="muted">A JSONL file, one item a line: <code>{"id", "prompt" or "messages", "responses": [text or
{"text", "model"}], "gold"?}</code>. Every line is checked first: all are imported, or none.</p>
<input type="file" name="file" accept=".jsonl,.json,.txt" required>
<div class="row"><button class="primary" type="submit">Import</button></div>
</form>
<h2>Members</h2>
<p>{% for m in members %}{{ m.name }}{% if m.admin %} (admin){% elif m.reviewer %} (reviewer){% endif %}{% if not loop.last %}, {% endif %}{% else %}<span class="muted">nobody yet</span>{% endfor %}</p>
{% if others %}
<form method="post" action="/admin/p/{{ project.id }}/members" class="card" id="members">
<input type="hidden" name="csrf" value="{{ who.csrf }}">
<div class="choices">{% for o in others %}<label><input type="checkbox" name="name" value="{{ o.name }}"> {{ o.name }}</label>{% endfor %}</div>
<button class="primary" type="submit">Add members</button>
</form>
{% endif %}
{% endblock %}
"""

ADMIN_PEOPLE = """{% extends "base.html" %}
{% block main %}
<nav class="sub"><a href="/admin">projects</a><a href="/admin/people">people and tokens</a></nav>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
{% if token %}<div class="card" id="new-token"><p>Token of <b>{{ token.name }}</b>, shown once: send it to them
over a private channel. It logs them in at this app's /login page.</p>
<p class="token" id="token">{{ token.token }}</p></div>{% endif %}
<h1>New person</h1>
<form method="post" action="/admin/people" class="card" id="new-person">
<input type="hidden" name="csrf" value="{{ who.csrf }}">
<div class="row"><label>Name <input type="text" name="name" required maxlength="200"></label>
<label>Role <select name="role"><option value="annotator">annotator</option>
<option value="reviewer">reviewer</option><option value="admin">admin</option></select></label></div>
<p class="label">Member of</p>
<div class="choices">{% for p in projects %}<label><input type="checkbox" name="project" value="{{ p.name }}"> {{ p.name }}</label>{% endfor %}</div>
<button class="primary" type="submit">Create and show token</button>
</form>
<h1>People</h1>
<table id="people">
<tr><th>name</th><th>role</th><th>status</th><th>projects</th><th>judgments</th><th></th></tr>
{% for p in people %}
<tr><td>{{ p.name }}</td><td>{{ "admin" if p.admin else "reviewer" if p.reviewer else "annotator" }}</td>
<td>{{ p.status }}</td><td>{{ p.projects | join(", ") }}</td><td>{{ p.judgments }}</td>
<td><form method="post" action="/admin/people/rotate"><input type="hidden" name="csrf" value="{{ who.csrf }}">
<input type="hidden" name="name" value="{{ p.name }}"><button class="secondary" type="submit">new token</button></form></td></tr>
{% endfor %}
</table>
{% endblock %}
"""

ADMIN_TEMPLATES = {
    "admin.html": ADMIN,
    "admin_stats.html": STATS,
    "admin_project.html": ADMIN_PROJECT,
    "admin_people.html": ADMIN_PEOPLE,
}
