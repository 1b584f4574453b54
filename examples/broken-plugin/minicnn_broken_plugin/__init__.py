"""A deliberately broken minicnn plugin: it imports a package that does not exist, so loading it fails.

minicnn records the failure (`minicnn plugins` shows the plugin "broken" as failed, with the
ImportError) and every other plugin, and every command, keeps working.
"""

import minicnn
import minicnn_missing_dependency  # noqa: F401  (installed nowhere: this import fails on purpose)


@minicnn.hookimpl
def minicnn_register_models(register):
    register("broken", lambda **kwargs: None, input_size=(1, 28, 28), description="never registered")
