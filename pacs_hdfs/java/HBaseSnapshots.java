// HBase table snapshots for `pacs backup` (pacs_hdfs/snapshots.py runs this file with
// `java HBaseSnapshots.java ...`, Java's single-file source mode, against the HBase client jars
// and an hbase-site.xml on the class path). Thrift 1 has no snapshot calls, and HBase ships a
// tool only for creating one snapshot per JVM (org.apache.hadoop.hbase.snapshot.CreateSnapshot);
// this does create, restore, list and delete for many tables in one JVM, through HBase's Admin.
//
//   create  TABLE=SNAPSHOT ...   flush-snapshot each table, then count its rows
//   restore SNAPSHOT=TABLE ...   disable, restoreSnapshot (or clone when dropped), enable, count
//   list    REGEX                snapshots whose names match
//   delete  SNAPSHOT ...         delete snapshots (missing ones are skipped)
//   count   TABLE ...            rows of each table
//
// Output: one JSON object per line on stdout; errors go to stderr with a non-zero exit.
import java.util.regex.Pattern;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hbase.HBaseConfiguration;
import org.apache.hadoop.hbase.TableName;
import org.apache.hadoop.hbase.client.Admin;
import org.apache.hadoop.hbase.client.Connection;
import org.apache.hadoop.hbase.client.ConnectionFactory;
import org.apache.hadoop.hbase.client.Result;
import org.apache.hadoop.hbase.client.ResultScanner;
import org.apache.hadoop.hbase.client.Scan;
import org.apache.hadoop.hbase.client.SnapshotDescription;
import org.apache.hadoop.hbase.client.Table;
import org.apache.hadoop.hbase.filter.FirstKeyOnlyFilter;

public class HBaseSnapshots {
    public static void main(String[] args) throws Exception {
        Configuration conf = HBaseConfiguration.create();
        try (Connection conn = ConnectionFactory.createConnection(conf);
             Admin admin = conn.getAdmin()) {
            String op = args[0];
            for (int i = 1; i < args.length; i++) {
                String arg = args[i];
                String[] kv = arg.split("=", 2);
                switch (op) {
                    case "create": {
                        TableName t = TableName.valueOf(kv[0]);
                        admin.snapshot(kv[1], t);
                        line("table", kv[0], "snapshot", kv[1], "rows", count(conn, t));
                        break;
                    }
                    case "restore": {
                        TableName t = TableName.valueOf(kv[1]);
                        boolean existed = admin.tableExists(t);
                        if (existed) {
                            if (admin.isTableEnabled(t)) admin.disableTable(t);
                            admin.restoreSnapshot(kv[0]);
                            admin.enableTable(t);
                        } else {
                            admin.cloneSnapshot(kv[0], t);
                        }
                        line("table", kv[1], "snapshot", kv[0], "rows", count(conn, t),
                             "cloned", !existed);
                        break;
                    }
                    case "list": {
                        for (SnapshotDescription d : admin.listSnapshots(Pattern.compile(arg))) {
                            line("snapshot", d.getName(), "table", d.getTableNameAsString(),
                                 "created_ms", d.getCreationTime());
                        }
                        break;
                    }
                    case "delete": {
                        if (!admin.listSnapshots(Pattern.compile(Pattern.quote(arg))).isEmpty()) {
                            admin.deleteSnapshot(arg);
                            line("snapshot", arg, "deleted", true);
                        } else {
                            line("snapshot", arg, "deleted", false);
                        }
                        break;
                    }
                    case "count": {
                        line("table", arg, "rows", count(conn, TableName.valueOf(arg)));
                        break;
                    }
                    default:
                        throw new IllegalArgumentException("unknown operation " + op);
                }
            }
        }
    }

    static long count(Connection conn, TableName t) throws Exception {
        Scan scan = new Scan().setFilter(new FirstKeyOnlyFilter()).setCaching(1000)
            .setCacheBlocks(false);
        long n = 0;
        try (Table table = conn.getTable(t); ResultScanner rs = table.getScanner(scan)) {
            for (Result r : rs) n++;
        }
        return n;
    }

    static void line(Object... kv) {
        StringBuilder b = new StringBuilder("{");
        for (int i = 0; i < kv.length; i += 2) {
            if (i > 0) b.append(", ");
            b.append('"').append(kv[i]).append("\": ");
            Object v = kv[i + 1];
            if (v instanceof String) b.append('"').append(((String) v).replace("\\", "\\\\")
                .replace("\"", "\\\"")).append('"');
            else b.append(v);
        }
        System.out.println(b.append('}'));
        System.out.flush();
    }
}
