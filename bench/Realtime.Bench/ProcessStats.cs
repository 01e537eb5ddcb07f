using System.Globalization;

namespace Realtime.Bench;

/// <summary>CPU seconds and peak resident memory of a process, from /proc (Linux).</summary>
internal sealed record ProcessSample(string Name, int Pid, double CpuSeconds, long PeakRssKiB, long RssKiB)
{
    private static readonly double TicksPerSecond = 100; // USER_HZ on Linux.

    public static ProcessSample? Read(string name, int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var cpu = (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
            long peak = 0, rss = 0;
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    peak = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
                }
                else if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    rss = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
                }
            }

            return new ProcessSample(name, pid, cpu, peak, rss);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    /// <summary>The processes of the system under test, found by their command lines.</summary>
    public static List<(string Name, int Pid)> FindStack()
    {
        var found = new List<(string, int)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            string cmdline;
            try
            {
                cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
            }
            catch (IOException)
            {
                continue;
            }

            var name = cmdline switch
            {
                _ when cmdline.Contains("Realtime.Gateway.dll", StringComparison.Ordinal) => cmdline.Contains("gw-1", StringComparison.Ordinal) ? "gateway gw-1" : "gateway gw-0",
                _ when cmdline.Contains("Realtime.Fanout.dll", StringComparison.Ordinal) => "fanout",
                _ when cmdline.Contains("Realtime.EmbeddedKafka.dll", StringComparison.Ordinal) => "kafka (embedded)",
                _ when cmdline.StartsWith("redis-server", StringComparison.Ordinal) => "redis-server",
                _ => null,
            };
            if (name is not null)
            {
                found.Add((name, pid));
            }
        }

        return found;
    }
}
