import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Random;

/**
 * A GC-churning JVM program: a long-lived cache of byte arrays (the old generation) whose
 * entries are replaced at a steady rate, plus a stream of short-lived request objects
 * (the young generation). Run with a fixed, pre-touched heap, e.g.
 *   java -Xms512m -Xmx512m -XX:+AlwaysPreTouch -XX:+UseG1GC GcChurn 200 90 150
 * Arguments: live-set MiB, seconds to run, MiB/s of short-lived allocation (0 = unthrottled).
 * Prints READY once the live set is built, then churns for the given time and exits.
 */
public final class GcChurn {
    public static void main(String[] args) throws InterruptedException {
        int liveMiB = args.length > 0 ? Integer.parseInt(args[0]) : 200;
        double seconds = args.length > 1 ? Double.parseDouble(args[1]) : 90;
        double allocMiBPerSec = args.length > 2 ? Double.parseDouble(args[2]) : 150;

        Random rnd = new Random(3);
        int entry = 1024;
        int entries = (int) ((long) liveMiB * 1024 * 1024 / (entry + 64));
        HashMap<Integer, byte[]> cache = new HashMap<>(entries * 2);
        for (int i = 0; i < entries; i++) {
            byte[] b = new byte[entry];
            rnd.nextBytes(b);
            cache.put(i, b);
        }
        System.out.println("READY live_entries=" + entries + " java=" + System.getProperty("java.version")
                + " vm=" + System.getProperty("java.vm.name"));
        System.out.flush();

        long start = System.nanoTime();
        long end = start + (long) (seconds * 1e9);
        long allocated = 0;
        long checksum = 0;
        List<Object> request = new ArrayList<>();
        while (System.nanoTime() < end) {
            // One "request": a burst of short-lived objects of mixed sizes.
            request.clear();
            for (int i = 0; i < 64; i++) {
                int n = 16 + rnd.nextInt(2048);
                byte[] tmp = new byte[n];
                tmp[rnd.nextInt(n)] = (byte) i;
                request.add(tmp);
                request.add(new StringBuilder("req-").append(i).append('-').append(n).toString());
                allocated += n + 64;
            }
            for (Object o : request) checksum += o.hashCode() & 7;
            // A few cache entries are replaced: old-generation mutation and promotion.
            for (int i = 0; i < 4; i++) {
                byte[] b = new byte[entry];
                b[rnd.nextInt(entry)] = (byte) checksum;
                cache.put(rnd.nextInt(entries), b);
            }
            if (allocMiBPerSec > 0) {
                double ahead = allocated / (allocMiBPerSec * 1024 * 1024) - (System.nanoTime() - start) / 1e9;
                if (ahead > 0.002) Thread.sleep((long) (ahead * 1000));
            }
        }
        System.err.println("done allocated_MiB=" + (allocated >> 20) + " checksum=" + checksum);
    }
}
