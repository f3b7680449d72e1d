"""Templates of the reviewer's pages and of an annotator's own judgments (autoescaped;
item text goes through ``| md``)."""

from __future__ import annotations

REVIEW_HOME = """{% extends "base.html" %}
{% block main %}
<h1>Review</h1>
<form method="get" action="/review" class="row">
  <label>Show items with agreement below <input type="text" name="below" value="{{ below }}" size="4"></label>
  <button class="secondary" type="submit">Apply</button>
  <span class="muted">(1 = any disagreement; flagged items always show)</span>
</form>
<table>
<tr><th>project</th><th>task</th><th>to review</th><th>reviewed</th><th></th></tr>
{% for r in rows %}
<tr><td>{{ r.project.name }}</td><td>{{ r.project.kind }}</td><td>{{ r.queue }}</td>
<td>{{ r.reviewed }}</td><td><a href="/review/p/{{ r.project.id }}?below={{ below }}">open queue</a></td></tr>
{% endfor %}
</table>
{% if not rows %}<p class="muted">No projects to review.</p>{% endif %}
{% endblock %}
"""

REVIEW_QUEUE = """{% extends "base.html" %}
{% block main %}
<h1>Review queue: {{ project.name }}</h1>
<p class="muted">{{ queue | length }} item(s) with agreement below {{ below }} or flagged;
{{ reviewed }} reviewed so far. <a href="/review">All projects</a></p>
<table id="queue">
<tr><th>item</th><th>votes</th><th>agreement</th><th>flags</th><th></th></tr>
{% for q in queue %}
<tr><td>{{ q.external_id }}</td><td>{{ q.votes }}</td><td>{{ fmt(q.agreement) }}</td>
<td>{% for f in q.flags %}<div>{{ f }}</div>{% endfor %}</td>
<td><a href="/review/i/{{ q.item_id }}?below={{ below }}">review</a></td></tr>
{% endfor %}
</table>
{% if not queue %}<p>Nothing to review here.</p>{% endif %}
{% endblock %}
"""

REVIEW_ITEM = """{% extends "base.html" %}
{% block main %}
<h1>{{ project.name }} / {{ external_id }} <span class="muted">({{ project.kind }},
  agreement {{ fmt(agreement) }})</span></h1>
{% include "prompt.html" %}
<div class="grid">
{% for r in responses %}
  <div class="card resp" data-letter="{{ r.letter }}"><div class="label">Response {{ r.letter }}</div>
  <div class="text md">{{ r.text | md }}</div></div>
{% endfor %}
</div>
<h2>Votes</h2>
<table class="votes" id="votes">
<tr><th>annotator</th><th>label</th><th>reason</th></tr>
{% for v in votes %}
<tr><td>{{ v.annotator }}</td><td>{% set j = v %}{% include "label.html" %}</td>
<td>{{ v.reason }}</td></tr>
{% endfor %}
</table>
{% if marks %}<h2>Skips and flags</h2>
<table id="marks"><tr><th>annotator</th><th>action</th><th>reason</th></tr>
{% for m in marks %}<tr><td>{{ m.annotator }}</td><td>{{ m.kind }}</td><td>{{ m.reason }}</td></tr>{% endfor %}
</table>{% endif %}
{% if decision %}<p id="decision">Current decision by {{ decision.reviewer }}:
{% if decision.discard %}discard{% else %}{{ decision.choice or decision.ranking or decision.ratings }}{% endif %}
{% if decision.note %}({{ decision.note }}){% endif %}</p>{% endif %}
<h2>Decision</h2>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="/review/i/{{ item_id }}?below={{ below }}" id="decide" class="card">
<input type="hidden" name="csrf" value="{{ who.csrf }}">
{% set kind = project.kind %}
{% set cur = decision or {} %}
{% include "widgets.html" %}
<div class="choices"><label><input type="checkbox" name="discard" value="1"> Discard this item (left out of every export)</label></div>
<label class="label" for="note">Note (optional)</label>
<textarea name="note" id="note" rows="2" maxlength="{{ max_reason }}"></textarea>
<div class="row"><button class="primary" type="submit">Save decision</button>
  <a href="/review/p/{{ project.id }}?below={{ below }}">back to the queue</a></div>
</form>
{% endblock %}
"""

# The label widgets of the review and edit forms (the task page has its own, with
# keyboard shortcuts). ``kind``, ``responses`` and ``cur`` (the current label in display
# terms, or {}) come from the including template.
WIDGETS = """{% if kind == "compare" %}
<div class="choices">
{% for v, text in (("A", "A is better"), ("B", "B is better"), ("tie", "Tie"), ("both_bad", "Both bad")) %}
  <label><input type="radio" name="choice" value="{{ v }}"{% if cur.choice == v %} checked{% endif %}> {{ text }}</label>
{% endfor %}
</div>
{% elif kind == "rank" %}
<div class="choices">{% for r in responses %}<label>{{ r.letter }} rank <select name="rank_{{ r.letter }}">
  <option value="">-</option>{% for k in range(1, responses|length + 1) %}<option value="{{ k }}"
  {% if cur.ranking and cur.ranking.index(r.letter) + 1 == k %} selected{% endif %}>{{ k }}</option>{% endfor %}
</select></label>{% endfor %}</div>
{% elif kind == "rate" %}
{% for r in responses %}<div class="choices stars">{{ r.letter }}:
  {% for v in range(1, 6) %}<label><input type="radio" name="rating_{{ r.letter }}" value="{{ v }}"
  {% if cur.ratings and cur.ratings[r.letter] == v %} checked{% endif %}> {{ v }}</label>{% endfor %}
</div>{% endfor %}
{% elif kind == "rewrite" %}
<div class="choices">{% for r in responses %}<label><input type="radio" name="choice" value="{{ r.letter }}"
  {% if cur.choice == r.letter %} checked{% endif %}> {{ r.letter }} is better</label>{% endfor %}</div>
<label class="label" for="rewrite">Rewrite</label>
<textarea name="rewrite" id="rewrite" class="rewrite" maxlength="{{ max_rewrite }}">{{ cur.rewrite or "" }}</textarea>
{% endif %}
"""

MINE = """{% extends "base.html" %}
{% block main %}
<h1>My judgments</h1>
<table id="mine">
<tr><th>project</th><th>item</th><th>label</th><th>versions</th><th>last changed</th><th></th></tr>
{% for j in judgments %}
<tr><td>{{ j.project }}</td><td>{{ j.item }}</td><td>{% include "label.html" %}</td>
<td>{{ j.versions }}</td><td>{{ j.updated_at[:19] }}</td><td><a href="/mine/{{ j.id }}">view / edit</a></td></tr>
{% endfor %}
</table>
{% if not judgments %}<p class="muted">Nothing judged yet.</p>{% endif %}
{% endblock %}
"""

LABEL = """{% set v = j %}{% if v.choice is defined %}{{ v.choice }}{% endif %}
{% if v.ranking is defined %}{{ v.ranking | join(" > ") }}{% endif %}
{% if v.ratings is defined %}{% for k, x in v.ratings.items() %}{{ k }}: {{ x }} {% endfor %}{% endif %}
{% if v.rewrite is defined %}<div class="text">{{ v.rewrite }}</div>{% endif %}"""

JUDGMENT = """{% extends "base.html" %}
{% block main %}
<h1>{{ j.project }} / {{ j.item }} <span class="muted">({{ kind }})</span></h1>
{% include "prompt.html" %}
<div class="grid">
{% for r in responses %}
  <div class="card resp" data-letter="{{ r.letter }}"><div class="label">Response {{ r.letter }}</div>
  <div class="text md">{{ r.text | md }}</div></div>
{% endfor %}
</div>
<h2>History</h2>
<table id="history"><tr><th>version</th><th>label</th><th>reason</th><th>when</th></tr>
{% for j in history %}<tr><td>{{ j.version }}</td><td>{% include "label.html" %}</td><td>{{ j.reason }}</td>
<td>{{ j.created_at[:19] }}</td></tr>{% endfor %}
</table>
<h2>Edit</h2>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="/mine/{{ j.id }}" id="edit" class="card">
<input type="hidden" name="csrf" value="{{ who.csrf }}">
{% set cur = j %}
{% include "widgets.html" %}
<label class="label" for="reason">Reason</label>
<textarea name="reason" id="reason" rows="2" maxlength="{{ max_reason }}">{{ j.reason }}</textarea>
<div class="row"><button class="primary" type="submit">Save a new version</button>
<a href="/mine">back to my judgments</a></div>
</form>
{% endblock %}
"""

REVIEW_TEMPLATES = {
    "widgets.html": WIDGETS,
    "label.html": LABEL,
    "mine.html": MINE,
    "judgment.html": JUDGMENT,
    "review_home.html": REVIEW_HOME,
    "review_queue.html": REVIEW_QUEUE,
    "review_item.html": REVIEW_ITEM,
}
