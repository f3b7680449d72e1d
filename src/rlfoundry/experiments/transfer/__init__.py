"""Transfer and lifelong learning with the tabular agents, measured exactly.

Two experiments, each run on several seeds and written to one directory:

**Fine-tuning** (``rlfoundry transfer finetune``). An agent learns a *source* task, then
the same algorithm learns a related *target* task starting from the source's Q-table;
it is compared with learning the target from scratch (Taylor & Stone 2009, "Transfer
Learning for RL Domains: A Survey", sec. 3.1):

- *jumpstart*: return of the fine-tuned agent at step 0 minus the scratch agent's;
- *time to threshold*: target env steps until the return first reaches ``threshold``
  (by default the target's optimal return), fine-tuned vs scratch;
- *asymptotic return*: mean return over the last ``tail`` evaluations of each.

**Lifelong sequence** (``rlfoundry transfer lifelong``). One agent learns tasks
``T_0 .. T_{n-1}`` in order, carrying its Q-table from one to the next. After each task
``i`` its greedy policy is scored on every task ``j``: the matrix ``R[i, j]``. Then

    forgetting_j     = R[j, j] - R[n-1, j]                  (j < n-1)
    max_forgetting_j = max_{i < n-1} R[i, j] - R[n-1, j]    (Chaudhry et al. 2018)
    backward transfer = mean_j (R[n-1, j] - R[j, j])         (Lopez-Paz & Ranzato 2017)

so forgetting is how much of what the agent could do right after learning task j is
gone at the end.

Every "return" here is exact: :func:`rlfoundry.mdp.evaluate_policy_exact` of the greedy
policy of the Q-table under the env's time limit, no sampled episodes, so the curves
carry no evaluation noise. The agents are the library's own tabular algorithms,
unchanged, on a plain :class:`~rlfoundry.runtime.run.Run` with two callbacks: a fine-tune
starts from the source's Q-table (:class:`~rlfoundry.runtime.callbacks.StartFrom`, the
rest of the run is fresh) and the greedy policy is scored along the way
(:func:`rlfoundry.algos.tabular.common.q_curve`). GridWorld layouts of one size share
their state numbering, so a Q-table carries over cell by cell.

The package: :mod:`.config` (the two experiments and the layouts), :mod:`.metrics`,
:mod:`.runner` (training and scoring), :mod:`.report` (plot, tables, files); the command
line is :mod:`rlfoundry.cli.transfer`.
"""

from rlfoundry.experiments.transfer.config import (
    BRIDGE,
    CORNERS,
    DETOUR,
    START_MOVED,
    WARM_START_ALGOS,
    FinetuneConfig,
    LifelongConfig,
)
from rlfoundry.experiments.transfer.metrics import (
    backward_transfer,
    forgetting,
    max_forgetting,
    time_to_threshold,
)
from rlfoundry.experiments.transfer.report import (
    finetune_table,
    lifelong_table,
    plot_transfer,
    write_result,
)
from rlfoundry.experiments.transfer.runner import (
    exact_scorer,
    optimum,
    run_finetune,
    run_lifelong,
    train_curve,
)

__all__ = [
    "BRIDGE",
    "CORNERS",
    "DETOUR",
    "START_MOVED",
    "WARM_START_ALGOS",
    "FinetuneConfig",
    "LifelongConfig",
    "backward_transfer",
    "exact_scorer",
    "finetune_table",
    "forgetting",
    "lifelong_table",
    "max_forgetting",
    "optimum",
    "plot_transfer",
    "run_finetune",
    "run_lifelong",
    "time_to_threshold",
    "train_curve",
    "write_result",
]
