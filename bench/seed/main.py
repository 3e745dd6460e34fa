# The seed: the Python Cloud Function (gen1, background event) that gcr-usage replaces.
#
# Origin: the article "Google Container Registry statistics from GCS access_logs" (Salmaan Rashid,
# 2019; https://blog.salrashid.dev/articles/2019/gcr_stats/, the medium.com/google-cloud post of
# the same name), whose function source is `gcf_loader/main.py` of github.com/salrashid123/gcr_stats,
# deployed with `gcloud functions deploy loader --entry-point=loader --runtime=python37
# --trigger-event=google.storage.object.finalize`. Rewritten here from that source, call for
# call, for bench/cold_start.py: a module-level BigQuery client (created when the module is
# imported, i.e. at instance start), the `'usage' in name` test, `load_table_from_uri` with
# `skip_leading_rows=1` and CSV into storageanalysis.usage, then waiting for the job, reading the
# table and printing; any exception is printed and swallowed, so the function always "succeeds".
# Nothing here is changed for the benchmark: the environment points it at the local fakes
# (BIGQUERY_EMULATOR_HOST for the API endpoint, GCE_METADATA_HOST/GCE_METADATA_IP for the
# credentials), exactly as google-cloud-bigquery and google-auth read them.
import os

from google.api_core import retry  # noqa: F401 - imported by the original, kept for its import cost
from google.cloud import bigquery

PROJECT_ID = os.getenv("GCP_PROJECT")  # set by the python37 runtime; unused, as in the original
dataset_id = "storageanalysis"
table_id = "usage"

bigquery_client = bigquery.Client()


def loader(data, context):
    bucket_name = data["bucket"]
    file_name = data["name"]

    # usage logs have "usage" in their names (storage logs do not): the seed's only filter
    if "usage" in file_name:
        load_job = None
        try:
            dataset_ref = bigquery_client.dataset(dataset_id)
            job_config = bigquery.LoadJobConfig()
            job_config.skip_leading_rows = 1
            job_config.source_format = bigquery.SourceFormat.CSV
            uri = "gs://{}/{}".format(bucket_name, file_name)
            load_job = bigquery_client.load_table_from_uri(uri, dataset_ref.table(table_id), job_config=job_config)
            print("Starting job {}".format(load_job.job_id))

            load_job.result()
            print("Job finished.")

            destination_table = bigquery_client.get_table(dataset_ref.table(table_id))
            print("Loaded {} rows.".format(destination_table.num_rows))
        except Exception as e:
            print(e)
            print(load_job.errors)
    return
