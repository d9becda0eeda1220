"""The only code that imports the tools mlnb builds on, one sub-package each: ``ploomber``, ``mlflow``,
``dvc``, ``nbval`` (and ``git``). The rest of mlnb speaks mlnb's own types."""
