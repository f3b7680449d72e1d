"""Human preference collection: the "annotate" step between generating responses and
training a reward model.

    rlfoundry feedback import items.jsonl --overlap 3   # or: feedback generate --model DIR
    rlfoundry feedback add-annotator maria              # prints her login token (--reviewer, --admin)
    rlfoundry feedback serve                            # http://127.0.0.1:8000
    rlfoundry feedback stats                            # agreement per project
    rlfoundry feedback export --format pairs --out pairs.jsonl   # or raw / kto, .csv / .parquet
    rlfoundry feedback leaderboard                      # per-model win rate, Bradley-Terry Elo
    rlfoundry llm reward-model --pairs pairs.jsonl      # or llm dpo

Modules, lowest first (each imports only its own group and the groups before it):

* ``db`` (tables);
* ``assign`` (who sees what), ``labels`` (what a judgment means), ``agreement`` and
  ``export`` (pure statistics and pairs), ``formats`` (raw and KTO rows),
  ``leaderboard`` (win rates, Bradley-Terry, bootstrap CIs) and ``writers``
  (JSONL / CSV / Parquet / ``datasets`` files);
* ``render`` (markdown and code -> sanitised HTML: markdown-it-py, Pygments, nh3);
* the database operations: ``projects`` (projects, parsing and importing items),
  ``accounts`` (annotators, tokens, roles, memberships, login sessions), ``judgments``
  (submit, read, edit with history, skip and flag one's own), ``tasks`` (progress and
  what an annotator is shown), ``review`` (the review queue and decisions),
  ``reports`` (agreement statistics, items for export with their decisions);
  each of their public functions opens its own transaction, and writes use
  ``db.write_session`` so that on SQLite they are serialized (see ``db.make_engine``);
* ``guards`` (body limit, security headers, failed-token limit: pure ASGI), ``web``
  (authentication, roles, CSRF, rendering shared by every route), ``templates``
  (+ ``templates_admin``, ``templates_review``), ``admin_routes`` and ``review_routes``
  (the admin's and reviewer's pages), ``app`` (the app and the annotator's routes),
  ``generate``, and ``rlfoundry.cli.feedback``.

Roles, review, the rewrite task and how decisions reach exports: docs/feedback.md.
"""
