"""A small residual MLP (2 layers, 20 features) whose target trains and decomposes in seconds."""

from typing import Any


def small_resid_mlp_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "task_config": {
            "task_name": "resid_mlp",
            "feature_probability": 0.05,
            "target": {
                "n_features": 20,
                "d_embed": 64,
                "d_mlp": 8,
                "n_layers": 2,
                "train_steps": 300,
                "train_batch_size": 512,
                "train_feature_probability": 0.05,
            },
        },
        "target_module_patterns": [["layers.*.mlp_in", 30], ["layers.*.mlp_out", 12]],
        "target_ci_patterns": {
            "identity": [{"pattern": "layers.*.mlp_in", "n_features": 20}],
            "dense": [{"pattern": "layers.*.mlp_out", "k": 8}],
        },
        "losses": {
            "faithfulness": {"coeff": 1.0},
            "importance_minimality": {"coeff": 1e-4, "pnorm": 2.0},
            "stochastic_recon": {"coeff": 1.0},
            "stochastic_recon_layerwise": {"coeff": 1.0},
        },
        "steps": 60,
        "batch_size": 256,
        "lr": 3e-3,
        "eval_freq": 30,
        "log_freq": 5,
        "save_freq": 30,
        "image_freq": 30,
        "device": "cpu",
    }
    config.update(overrides)
    return config
