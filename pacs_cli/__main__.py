from pacs_cli.main import app

app(prog_name="pacs")
