"""Fine-tuning strategies, one module each (base.py says what a strategy is). Importing this
package registers memlab's own, in this order (the report's order): full, head, lora. A
study adds its own with `train.plugins`."""

from memlab.strategies import full, head, lora  # noqa: F401  (they register)
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
