using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Realtime.Bench.Targets;

namespace Realtime.Bench.Workloads;

/// <summary>
/// W1: idle connections on one server instance (10,000 then 19,000: a process holds at most
/// 20,000 files here), each subscribed to one shared channel: resident memory per connection
/// (ΔRSS / N and ΔPSS / N of that instance) and its CPU while they sit idle. The run is valid when
/// the generator itself stayed below 70% of a core in every idle window.
/// </summary>
internal static class Idle
{
    public static async Task<JsonObject> RunAsync(IBenchTarget target, int[] steps, TimeSpan idleWindow, CancellationToken cancellationToken)
    {
        var channel = $"room:idle-{Guid.NewGuid():N}";
        var node = target.Processes().FirstOrDefault(p => Measurement.IsServer(p.Name) && p.Name.EndsWith('0'));
        if (node.Pid == 0)
        {
            throw new InvalidOperationException("the target's instance 0 process was not found");
        }

        var clients = new List<IBenchSubscriber>(steps.Max());
        var runs = new JsonArray();
        var busiestGenerator = 0.0;
        try
        {
            // Warm up first (the connection path's code compiled, pools and the heap grown once), so
            // the baseline holds the one-time costs and ΔRSS / N only what the connections hold.
            var warmup = new List<IBenchSubscriber>(200);
            for (var i = 0; i < 200; i++)
            {
                warmup.Add(await target.SubscribeAsync(steps.Max() + i, 0, SourceAddresses.For(i), channel + "-warmup", (_, _) => { }, cancellationToken));
            }

            await Task.WhenAll(warmup.Select(c => c.DisposeAsync().AsTask()));
            await Task.Delay(TimeSpan.FromSeconds(3), cancellationToken);
            var baseline = Memory.Read(node.Pid);
            var previous = (Connections: 0, Memory: baseline);
            foreach (var step in steps)
            {
                var connectClock = Stopwatch.StartNew();
                for (var i = clients.Count; i < step; i++)
                {
                    clients.Add(await target.SubscribeAsync(i, 0, SourceAddresses.For(i), channel, (_, _) => { }, cancellationToken));
                }

                var connectSeconds = connectClock.Elapsed.TotalSeconds;
                // Let the connect burst's garbage go and the server settle before reading memory.
                await Task.Delay(TimeSpan.FromSeconds(3), cancellationToken);
                var cpuBefore = ProcessSample.Read(node.Name, node.Pid)?.CpuSeconds ?? 0;
                var generatorBefore = Process.GetCurrentProcess().TotalProcessorTime;
                await Task.Delay(idleWindow, cancellationToken);
                var cpuAfter = ProcessSample.Read(node.Name, node.Pid)?.CpuSeconds ?? 0;
                var generatorShare = (Process.GetCurrentProcess().TotalProcessorTime - generatorBefore) / idleWindow;
                busiestGenerator = Math.Max(busiestGenerator, generatorShare);
                var memory = Memory.Read(node.Pid);
                runs.Add(new JsonObject
                {
                    ["connections"] = step,
                    ["connectSeconds"] = Math.Round(connectSeconds, 2),
                    ["rssMiB"] = Math.Round(memory.RssKiB / 1024.0, 1),
                    ["pssMiB"] = Math.Round(memory.PssKiB / 1024.0, 1),
                    ["rssKiBPerConnection"] = Math.Round((memory.RssKiB - baseline.RssKiB) / (double)step, 2),
                    ["pssKiBPerConnection"] = Math.Round((memory.PssKiB - baseline.PssKiB) / (double)step, 2),
                    // What one more connection costs between this step and the one before.
                    ["marginalRssKiBPerConnection"] = Math.Round((memory.RssKiB - previous.Memory.RssKiB) / (double)(step - previous.Connections), 2),
                    ["idleCpuPercent"] = Math.Round((cpuAfter - cpuBefore) / idleWindow.TotalSeconds * 100, 2),
                    ["generatorCpuPercent"] = Math.Round(generatorShare * 100, 2),
                });
                previous = (step, memory);
            }
        }
        finally
        {
            await Task.WhenAll(clients.Select(c => c.DisposeAsync().AsTask()));
        }

        var measurement = new Measurement(target.Processes);
        measurement.Start();
        var report = measurement.Finish("W1", target.Name, new JsonObject
        {
            ["steps"] = new JsonArray([.. steps.Select(s => JsonValue.Create(s))]),
            ["node"] = node.Name,
            ["idleSeconds"] = idleWindow.TotalSeconds,
            ["baselineRssMiB"] = Math.Round(Memory.Read(node.Pid).RssKiB / 1024.0, 1),
        }, 0, 0, withLatency: false);
        // W1 measures memory and the idle window's CPU: the generator must be idle then too (the
        // common window above is empty, and its 10 ms CPU ticks would judge nothing).
        report["seconds"] = Math.Round(idleWindow.TotalSeconds * steps.Length, 2);
        report["generatorCpuShare"] = Math.Round(busiestGenerator, 3);
        report["valid"] = busiestGenerator <= 0.7;
        report["runs"] = runs;
        report["rssKiBPerConnection"] = runs[^1]!["rssKiBPerConnection"]!.DeepClone();
        report["pssKiBPerConnection"] = runs[^1]!["pssKiBPerConnection"]!.DeepClone();
        return report;
    }

    /// <summary>Resident (RSS) and proportional (PSS: shared pages divided among their users) memory of a process.</summary>
    private readonly record struct Memory(long RssKiB, long PssKiB)
    {
        public static Memory Read(int pid)
        {
            long rss = 0, pss = 0;
            foreach (var line in File.ReadLines($"/proc/{pid}/smaps_rollup"))
            {
                if (line.StartsWith("Rss:", StringComparison.Ordinal))
                {
                    rss = Kib(line);
                }
                else if (line.StartsWith("Pss:", StringComparison.Ordinal))
                {
                    pss = Kib(line);
                }
            }

            return new Memory(rss, pss);
        }

        private static long Kib(string line) => long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }
}
