"""Human preference collection: the "annotate" step between generating responses and
training a reward model.

    rlfoundry feedback import items.jsonl --overlap 3   # or: feedback generate --model DIR
    rlfoundry feedback add-annotator maria              # prints her login token
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
* the database operations: ``projects`` (projects, parsing and importing items),
  ``accounts`` (annotators, tokens, memberships, login sessions), ``judgments`` (submit,
  read and edit one's own), ``tasks`` (progress and what an annotator is shown),
  ``reports`` (agreement statistics, items for export);
  each of their public functions opens its own transaction, and writes use
  ``db.write_session`` so that on SQLite they are serialized (see ``db.make_engine``);
* ``guards`` (body limit, security headers, failed-token limit: pure ASGI), ``app`` and
  ``templates`` (web app), ``generate``, and ``rlfoundry.cli.feedback``.
"""
