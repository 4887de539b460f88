"""User metric and figure callables used by the tests (named in configs as 'module:function')."""

import matplotlib.pyplot as plt


def n_modules_metric(model, task, config):
    return {"user/n_modules": len(model.module_paths)}


def blank_figure(model, task, config):
    fig, ax = plt.subplots()
    ax.set_title(f"{len(model.module_paths)} modules")
    return {"user_blank": fig}
