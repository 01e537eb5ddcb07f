using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using ScottPlot;

namespace Realtime.Bench;

/// <summary>The report's PNG plots: latency distributions, CPU per million deliveries, memory per connection.</summary>
internal static class Plots
{
    private const int Width = 900;
    private const int Height = 500;

    public static void Write(string directory, List<(string Name, JsonObject Json)> results, StringBuilder text)
    {
        // The plots of this run only: a run with other parameters leaves no stale pictures behind.
        foreach (var old in Directory.GetFiles(directory, "*.png"))
        {
            File.Delete(old);
        }

        text.AppendLine("## Plots").AppendLine();
        foreach (var group in results.Where(r => (string?)r.Json["workload"] is "W2" or "W3" && r.Json["latencyPercentilesMs"] is not null)
                     .GroupBy(r => $"{r.Json["workload"]}-{Key(r.Json)}"))
        {
            var file = $"latency-{Sanitize(group.Key)}.png";
            LatencyDistribution(Path.Combine(directory, file), group.Key, [.. group]);
            text.AppendLine(CultureInfo.InvariantCulture, $"![latency {group.Key}](benchmarks/{file})").AppendLine();
        }

        var delivery = results.Where(r => (string?)r.Json["workload"] is "W2" or "W3" && r.Json["cpuSecondsPerMillionDeliveries"] is not null && (bool?)r.Json["valid"] != false).ToList();
        if (delivery.Count > 0)
        {
            Bars(Path.Combine(directory, "cpu-per-million-deliveries.png"), "CPU seconds per million deliveries (lower is better)", "CPU s / M deliveries",
                [.. delivery.SelectMany(r => (string?)r.Json["target"] == "realtime"
                    ? new[] { ($"{Short(r.Json)} ours", (double)r.Json["cpuSecondsPerMillionDeliveries"]!), ($"{Short(r.Json)} ours (gateways only)", (double)r.Json["gatewayOnlyCpuSecondsPerMillionDeliveries"]!) }
                    : [($"{Short(r.Json)} {r.Json["target"]}", (double)r.Json["cpuSecondsPerMillionDeliveries"]!)])]);
            text.AppendLine("![CPU per million deliveries](benchmarks/cpu-per-million-deliveries.png)").AppendLine();
        }

        var idle = results.Where(r => (string?)r.Json["workload"] == "W1").ToList();
        if (idle.Count > 0)
        {
            Bars(Path.Combine(directory, "memory-per-connection.png"), "Resident memory per idle WebSocket connection (lower is better)", "KiB per connection",
                [.. idle.SelectMany(r => r.Json["runs"]!.AsArray().Select(step => ($"{r.Name.Replace("W1-", string.Empty, StringComparison.Ordinal)} {step!["connections"]}", (double)step["rssKiBPerConnection"]!)))]);
            text.AppendLine("![memory per connection](benchmarks/memory-per-connection.png)").AppendLine();
        }
    }

    /// <summary>Latency against percentile on a "nines" axis (90, 99, 99.9 ... equally spaced), one line per target.</summary>
    private static void LatencyDistribution(string path, string title, List<(string Name, JsonObject Json)> runs)
    {
        var plot = new Plot();
        foreach (var (_, json) in runs)
        {
            var points = json["latencyPercentilesMs"]!.AsArray()
                .Select(p => ((double)p![0]!, (double)p[1]!))
                .Where(p => p.Item1 < 100)
                .ToList();
            var line = plot.Add.Scatter(points.Select(p => Nines(p.Item1)).ToArray(), points.Select(p => p.Item2).ToArray());
            line.LegendText = $"{json["target"]}{((bool?)json["valid"] == false ? " (invalid run)" : string.Empty)}";
        }

        double[] ticks = [0, 50, 90, 99, 99.9, 99.99];
        plot.Axes.Bottom.SetTicks([.. ticks.Select(Nines)], [.. ticks.Select(t => t.ToString(CultureInfo.InvariantCulture) + "%")]);
        plot.Axes.Bottom.Label.Text = "percentile";
        plot.Axes.Left.Label.Text = "end-to-end latency, ms";
        plot.Title($"Latency distribution, {title}");
        plot.ShowLegend(Alignment.UpperLeft);
        plot.SavePng(path, Width, Height);
    }

    private static void Bars(string path, string title, string axis, List<(string Label, double Value)> bars)
    {
        var plot = new Plot();
        var values = plot.Add.Bars(bars.Select(b => b.Value).ToArray());
        foreach (var (bar, i) in values.Bars.Select((b, i) => (b, i)))
        {
            bar.Label = bars[i].Value.ToString("0.#", CultureInfo.InvariantCulture);
        }

        values.ValueLabelStyle.FontSize = 11;
        plot.Axes.Bottom.SetTicks([.. bars.Select((_, i) => (double)i)], [.. bars.Select(b => b.Label)]);
        plot.Axes.Bottom.TickLabelStyle.Rotation = 30;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        plot.Axes.Bottom.MinimumSize = 160;
        plot.Axes.Left.Label.Text = axis;
        plot.Axes.Margins(bottom: 0);
        plot.Title(title);
        plot.SavePng(path, Width, Height + 100);
    }

    private static double Nines(double percentile) => -Math.Log10(1 - (percentile / 100.0));

    private static string Key(JsonObject json)
    {
        var p = json["parameters"]!;
        return (string?)json["workload"] == "W3"
            ? $"{p["channels"]}ch-{p["eventsPerSecond"]}per-s"
            : $"{p["subscribers"]}x{p["eventsPerSecond"]}per-s";
    }

    private static string Short(JsonObject json) => $"{json["workload"]} {Key(json)}";

    private static string Sanitize(string name) => string.Concat(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' ? c : '-'));
}
