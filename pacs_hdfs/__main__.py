from pacs_hdfs.cli import app

app(prog_name="pacs")
