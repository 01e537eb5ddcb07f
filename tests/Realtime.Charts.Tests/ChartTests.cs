using Realtime.Testing;
using YamlDotNet.RepresentationModel;

namespace Realtime.Charts.Tests;

/// <summary>The Helm chart, rendered as a cluster would receive it, with every values file of <c>ci/</c>.</summary>
public sealed class ChartTests
{
    public static TheoryData<string> ValueFiles => [.. HelmChart.CiValueFiles.Select(f => Path.GetFileName(f))];

    private static string ValuesPath(string name) => Path.Combine(HelmChart.ChartDirectory, "ci", name);

    [Theory]
    [MemberData(nameof(ValueFiles))]
    public void Lints_strictly_and_renders(string values)
    {
        var (code, output) = HelmChart.Run(HelmChart.Helm, "lint", HelmChart.ChartDirectory, "-f", ValuesPath(values), "--strict");
        Assert.True(code == 0, output);
        Assert.NotEmpty(HelmChart.Render(ValuesPath(values)));
    }

    [Theory]
    [MemberData(nameof(ValueFiles))]
    public void Each_gateway_pod_is_a_stable_node_whose_name_is_its_node_id(string values)
    {
        var manifests = HelmChart.Render(ValuesPath(values));
        var gateway = Assert.Single(manifests.Kind("StatefulSet"));
        var headless = gateway.Scalar("spec", "serviceName");
        Assert.Contains(manifests.Kind("Service"), s => s.Scalar("metadata", "name") == headless && s.Scalar("spec", "clusterIP") == "None");
        var env = Env(gateway);
        Assert.Equal("metadata.name", env["Gateway__NodeId"].Scalar("valueFrom", "fieldRef", "fieldPath"));
        Assert.Equal("metadata.name", env["POD_NAME"].Scalar("valueFrom", "fieldRef", "fieldPath"));
    }

    [Theory]
    [MemberData(nameof(ValueFiles))]
    public void A_stopping_gateway_gets_its_whole_drain_window_and_time_to_commit(string values)
    {
        var gateway = Assert.Single(HelmChart.Render(ValuesPath(values)).Kind("StatefulSet"));
        var window = TimeSpan.Parse(Env(gateway)["Gateway__DrainWindow"].Scalar("value")!, System.Globalization.CultureInfo.InvariantCulture);
        var grace = int.Parse(gateway.Scalar("spec", "template", "spec", "terminationGracePeriodSeconds")!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(grace >= window.TotalSeconds + 15, $"grace period {grace}s leaves no time past the {window.TotalSeconds}s drain window");
    }

    [Fact]
    public void The_drain_window_follows_the_value()
    {
        var gateway = Assert.Single(HelmChart.Render(ValuesPath("default-values.yaml"), "--set", "gateway.drainWindowSeconds=45").Kind("StatefulSet"));
        Assert.Equal("00:00:45", Env(gateway)["Gateway__DrainWindow"].Scalar("value"));
        Assert.Equal("65", gateway.Scalar("spec", "template", "spec", "terminationGracePeriodSeconds"));
    }

    [Theory]
    [MemberData(nameof(ValueFiles))]
    public void Every_workload_has_probes_a_disruption_budget_and_a_locked_down_security_context(string values)
    {
        var manifests = HelmChart.Render(ValuesPath(values));
        var workloads = manifests.Kind("StatefulSet").Concat(manifests.Kind("Deployment")).ToList();
        Assert.Equal(2, workloads.Count);
        foreach (var workload in workloads)
        {
            var name = workload.Scalar("metadata", "name");
            var pod = workload.At("spec", "template", "spec")!;
            Assert.Equal("true", pod.Scalar("securityContext", "runAsNonRoot"));
            Assert.Equal("RuntimeDefault", pod.Scalar("securityContext", "seccompProfile", "type"));
            foreach (var container in ((YamlSequenceNode)pod.At("containers")!).Children)
            {
                Assert.Equal("/healthz", container.Scalar("livenessProbe", "httpGet", "path"));
                Assert.Equal("/readyz", container.Scalar("readinessProbe", "httpGet", "path"));
                Assert.Equal("false", container.Scalar("securityContext", "allowPrivilegeEscalation"));
                Assert.Equal("true", container.Scalar("securityContext", "readOnlyRootFilesystem"));
                Assert.Equal("ALL", ((YamlSequenceNode)container.At("securityContext", "capabilities", "drop")!).Children.OfType<YamlScalarNode>().Single().Value);
                Assert.NotNull(container.At("resources", "requests"));
            }

            // A disruption budget selecting exactly this workload's pods.
            var labels = (YamlMappingNode)workload.At("spec", "selector", "matchLabels")!;
            Assert.Contains(manifests.Kind("PodDisruptionBudget"), pdb => ((YamlMappingNode)pdb.At("spec", "selector", "matchLabels")!).Children.SequenceEqual(labels.Children));
            Assert.True(name is not null);
        }
    }

    [Theory]
    [MemberData(nameof(ValueFiles))]
    public void Secrets_come_from_secrets_never_from_values(string values)
    {
        var gateway = Assert.Single(HelmChart.Render(ValuesPath(values)).Kind("StatefulSet"));
        var env = Env(gateway);
        if (env.TryGetValue("Auth__SigningKey", out var key))
        {
            Assert.Null(key.At("value"));
            Assert.NotNull(key.At("valueFrom", "secretKeyRef", "name"));
        }
        else
        {
            Assert.True(env.ContainsKey("Auth__JwksUrl"), "no key source at all");
        }

        if (env.TryGetValue("Kafka__Properties__sasl.password", out var sasl))
        {
            Assert.NotNull(sasl.At("valueFrom", "secretKeyRef", "name"));
        }
    }

    [Fact]
    public void Without_a_key_source_the_chart_refuses_to_render()
    {
        var (code, output) = HelmChart.Run(HelmChart.Helm, "template", "r", HelmChart.ChartDirectory);
        Assert.NotEqual(0, code);
        Assert.Contains("auth.existingSecret", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Monitoring_renders_a_service_monitor_alert_rules_and_a_dashboard_with_the_thresholds()
    {
        var manifests = HelmChart.Render(ValuesPath("full-values.yaml"));
        Assert.Single(manifests.Kind("ServiceMonitor"));
        var rules = Assert.Single(manifests.Kind("PrometheusRule"));
        var alerts = ((YamlSequenceNode)((YamlSequenceNode)rules.At("spec", "groups")!).Children[0].At("rules")!).Children.Select(r => r.Scalar("alert")).ToList();
        Assert.Equal(9, alerts.Count);
        Assert.All(((YamlSequenceNode)((YamlSequenceNode)rules.At("spec", "groups")!).Children[0].At("rules")!).Children, r => Assert.Contains("docs/operations.md#", r.Scalar("annotations", "runbook_url"), StringComparison.Ordinal));
        var dashboard = manifests.Kind("ConfigMap").Single(c => c.Scalar("metadata", "labels", "grafana_dashboard") == "1");
        var json = System.Text.Json.Nodes.JsonNode.Parse(dashboard.Scalar("data", "realtime-pipeline.json")!)!;
        Assert.Contains(json["panels"]!.AsArray(), p => p!["fieldConfig"]?["defaults"]?["thresholds"] is not null);
    }

    [Fact]
    public void Every_alert_fires_and_stays_quiet_in_its_promtool_unit_tests()
    {
        var promtool = File.Exists("/usr/bin/promtool") ? "/usr/bin/promtool" : "promtool";
        var rules = Assert.Single(HelmChart.Render(ValuesPath("full-values.yaml")).Kind("PrometheusRule"));
        var directory = Directory.CreateTempSubdirectory("realtime-alerts");
        try
        {
            var spec = new YamlDocument(rules.At("spec")!);
            using (var writer = new StreamWriter(Path.Combine(directory.FullName, "alerts.rendered.yaml")))
            {
                new YamlStream(spec).Save(writer, assignAnchors: false);
            }

            var tests = Path.Combine(directory.FullName, "alerts.test.yaml");
            File.Copy(Path.Combine(HelmChart.ChartDirectory, "tests", "alerts.test.yaml"), tests);
            var (code, output) = HelmChart.Run(promtool, "test", "rules", tests);
            Assert.True(code == 0, output);
            Assert.Contains("SUCCESS", output, StringComparison.Ordinal);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static Dictionary<string, YamlNode> Env(YamlMappingNode workload) =>
        ((YamlSequenceNode)((YamlSequenceNode)workload.At("spec", "template", "spec", "containers")!).Children[0].At("env")!).Children
            .ToDictionary(e => e.Scalar("name")!, e => e);
}
