"""Fine-tuning strategies, one module each (base.py says what a strategy is; adapters.py what
the peft methods share). Importing this package registers memlab's own, in this order (the
order of the report and the plan): full, head, lora, then the other peft methods (dora, ia3,
loha, lokr, vera, prefix, prompt) and bitfit. A study adds its own with `train.plugins`."""

# they register in import order:
# isort: off
from memlab.strategies import full, head, lora  # noqa: F401
from memlab.strategies import dora, ia3, loha, lokr, vera, prefix, prompt  # noqa: F401
from memlab.strategies import bitfit  # noqa: F401
# isort: on
from memlab.strategies.base import (  # noqa: F401
    STRATEGIES,
    Prepared,
    Strategy,
    activations,
    frozen_body,
    get,
    load_plugins,
    logits,
    register,
    resources,
    setting,
)
