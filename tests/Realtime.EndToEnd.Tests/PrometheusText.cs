using System.Globalization;
using System.Text.Json.Nodes;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>One sample of a Prometheus exposition: metric name (with its suffix), labels, value.</summary>
public sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

/// <summary>
/// Scrapes a <c>/metrics</c> endpoint and parses it with the Prometheus project's own Python
/// client parser (<c>prometheus_client.parser</c>, Debian's python3-prometheus-client), so the
/// tests check what a real scraper reads, not what a hand-written parser accepts.
/// </summary>
public static class PrometheusText
{
    private const string ParseScript = """
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        out = []
        for family in text_string_to_metric_families(sys.stdin.read()):
            for s in family.samples:
                out.append({"name": s.name, "labels": s.labels, "value": s.value})
        print(json.dumps(out))
        """;

    public static async Task<IReadOnlyList<PrometheusSample>> ScrapeAsync(Uri service)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var text = await http.GetStringAsync(new Uri(service, "/metrics"));
        return await ParseAsync(text);
    }

    public static async Task<IReadOnlyList<PrometheusSample>> ParseAsync(string text)
    {
        var script = Path.Combine(Path.GetTempPath(), "realtime-prom-parse.py");
        await File.WriteAllTextAsync(script, ParseScript);
        using var process = new System.Diagnostics.Process
        {
            // Debian's interpreter: the one python3-prometheus-client installs into.
            StartInfo = new System.Diagnostics.ProcessStartInfo(File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3", [script])
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            },
        };
        process.Start();
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.StandardInput.WriteAsync(text);
        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"The Prometheus parser refused the exposition (python3-prometheus-client is installed by ./realtime.sh test): {await error}");
        }

        return [.. JsonNode.Parse(await output)!.AsArray().Select(s => new PrometheusSample(
            (string)s!["name"]!,
            s["labels"]!.AsObject().ToDictionary(l => l.Key, l => (string)l.Value!),
            (double)s["value"]!))];
    }

    public static double Sum(this IEnumerable<PrometheusSample> samples, string name, params (string Key, string Value)[] labels) =>
        samples.Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Key, out var v) && v == l.Value)).Sum(s => s.Value);
}
