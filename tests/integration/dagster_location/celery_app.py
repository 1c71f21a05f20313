"""The celery app the test's workers run (``celery -A ...celery_app worker``): dagster-celery's
step task, with the broker and settings of the job's executor."""

import os

from dagster._core.execution.retries import RetryMode
from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from .distributed import celery_config

CONFIG = celery_config(os.environ["RUNWF_TEST_BROKER_URL"])
app = make_app(CeleryExecutor(retries=RetryMode.DISABLED, **CONFIG).app_args())

execute_plan = create_task(app)
