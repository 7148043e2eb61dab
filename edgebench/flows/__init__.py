"""Prefect flows: thin glue that puts the pipeline's steps into a DAG."""
