"""What the DAG files wire together: Airflow environment, Cosmos configs, task callables.

DAG files stay thin (wiring only); everything they need is built here, from the one
settings object, so the CLI, the demo and the Airflow UI agree on every name.
"""
