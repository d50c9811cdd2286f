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
// Tables are handled concurrently (each a master procedure: flush, snapshot, restore...), so a
// backup of a dozen tables waits about as long as its slowest table, not as long as all of them.
// Output: one JSON object per line on stdout, in argument order; errors go to stderr with a
// non-zero exit.
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
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
        String op = args[0];
        try (Connection conn = ConnectionFactory.createConnection(conf)) {
            if (op.equals("list")) {
                try (Admin admin = conn.getAdmin()) {
                    for (SnapshotDescription d : admin.listSnapshots(Pattern.compile(args[1]))) {
                        line("snapshot", d.getName(), "table", d.getTableNameAsString(),
                             "created_ms", d.getCreationTime());
                    }
                }
                return;
            }
            ExecutorService pool = Executors.newFixedThreadPool(4);
            List<Future<String>> results = new ArrayList<>();
            for (int i = 1; i < args.length; i++) {
                String arg = args[i];
                results.add(pool.submit(() -> one(conn, op, arg)));
            }
            try {
                for (Future<String> r : results) {
                    System.out.println(r.get());
                }
            } finally {
                pool.shutdownNow();
            }
        }
    }

    /** One table's (or snapshot's) operation, with an Admin of its own (Admin is not
     *  thread-safe; the Connection is). */
    static String one(Connection conn, String op, String arg) throws Exception {
        String[] kv = arg.split("=", 2);
        try (Admin admin = conn.getAdmin()) {
            switch (op) {
                case "create": {
                    TableName t = TableName.valueOf(kv[0]);
                    admin.snapshot(kv[1], t);
                    return json("table", kv[0], "snapshot", kv[1], "rows", count(conn, t));
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
                    return json("table", kv[1], "snapshot", kv[0], "rows", count(conn, t),
                                "cloned", !existed);
                }
                case "delete": {
                    boolean there =
                        !admin.listSnapshots(Pattern.compile(Pattern.quote(arg))).isEmpty();
                    if (there) admin.deleteSnapshot(arg);
                    return json("snapshot", arg, "deleted", there);
                }
                case "count":
                    return json("table", arg, "rows", count(conn, TableName.valueOf(arg)));
                default:
                    throw new IllegalArgumentException("unknown operation " + op);
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
        System.out.println(json(kv));
    }

    static String json(Object... kv) {
        StringBuilder b = new StringBuilder("{");
        for (int i = 0; i < kv.length; i += 2) {
            if (i > 0) b.append(", ");
            b.append('"').append(kv[i]).append("\": ");
            Object v = kv[i + 1];
            if (v instanceof String) b.append('"').append(((String) v).replace("\\", "\\\\")
                .replace("\"", "\\\"")).append('"');
            else b.append(v);
        }
        return b.append('}').toString();
    }
}
