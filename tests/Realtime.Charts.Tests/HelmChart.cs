using System.Diagnostics;
using Realtime.Testing;
using YamlDotNet.RepresentationModel;

namespace Realtime.Charts.Tests;

/// <summary>Runs <c>helm</c> and <c>promtool</c> on the chart, as processes with bounded time.</summary>
public static class HelmChart
{
    public static string ChartDirectory => Path.Combine(RepoPaths.Root, "charts", "realtime-pipeline");

    public static IEnumerable<string> CiValueFiles => Directory.GetFiles(Path.Combine(ChartDirectory, "ci"), "*.yaml").Order(StringComparer.Ordinal);

    /// <summary>helm: <c>$HELM</c>, else the copy <c>./realtime.sh test</c> installs under .run/tools.</summary>
    public static string Helm
    {
        get
        {
            var path = Environment.GetEnvironmentVariable("HELM") is { Length: > 0 } fromEnv ? fromEnv : Path.Combine(RepoPaths.Root, ".run", "tools", "helm", "helm");
            Assert.True(File.Exists(path), $"helm not found at {path}: ./realtime.sh test installs it (ensure_helm), or set HELM.");
            return path;
        }
    }

    public static (int ExitCode, string Output) Run(string file, params string[] arguments)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', arguments)} did not finish in 2 minutes");
        }

        return (process.ExitCode, output.Result + error.Result);
    }

    /// <summary>The manifests <c>helm template</c> renders with a values file, parsed.</summary>
    public static List<YamlMappingNode> Render(string valuesFile, params string[] extra)
    {
        var (code, output) = Run(Helm, ["template", "r", ChartDirectory, "-f", valuesFile, .. extra]);
        Assert.True(code == 0, $"helm template failed for {Path.GetFileName(valuesFile)}:\n{output}");
        var stream = new YamlStream();
        stream.Load(new StringReader(output));
        return [.. stream.Documents.Select(d => d.RootNode).OfType<YamlMappingNode>()];
    }

    public static YamlNode? At(this YamlNode node, params string[] path)
    {
        var current = node;
        foreach (var key in path)
        {
            if (current is YamlMappingNode mapping && mapping.Children.TryGetValue(new YamlScalarNode(key), out var next))
            {
                current = next;
            }
            else
            {
                return null;
            }
        }

        return current;
    }

    public static string? Scalar(this YamlNode node, params string[] path) => (node.At(path) as YamlScalarNode)?.Value;

    public static IEnumerable<YamlMappingNode> Kind(this IEnumerable<YamlMappingNode> manifests, string kind) =>
        manifests.Where(m => m.Scalar("kind") == kind);
}
