"""Human preference collection: the "annotate" step between generating responses and
training a reward model.

    rlfoundry feedback import items.jsonl --overlap 3   # or: feedback generate --model DIR
    rlfoundry feedback add-annotator maria              # prints her login token
    rlfoundry feedback serve                            # http://127.0.0.1:8000
    rlfoundry feedback stats                            # agreement per project
    rlfoundry feedback export --format pairs --out pairs.jsonl
    rlfoundry llm reward-model --pairs pairs.jsonl      # or llm dpo

Modules: ``db`` (tables), ``assign`` (who sees what), ``labels`` (what a judgment
means), ``agreement`` and ``export`` (pure statistics and pairs), ``store`` (database
operations), ``guards`` (body limit, security headers, failed-token limit: pure ASGI),
``app`` and ``templates`` (web app), ``cli``.
"""
