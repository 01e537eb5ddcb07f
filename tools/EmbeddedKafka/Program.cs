using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Realtime.EmbeddedKafka;

const string Usage = """
    usage: dotnet Realtime.EmbeddedKafka.dll [--listen 127.0.0.1:9092] [--brokers 1] [--topic NAME:PARTITIONS]... [--metrics 127.0.0.1:9190] [--relay]
      --listen   IPv4 loopback address and port of broker 1; broker N gets port + N - 1
                 (clients bootstrap there, then connect to the brokers' own loopback ports)
      --brokers  number of brokers, 1-9
      --topic    topic to create at start (repeatable); adds to EMBEDDED_KAFKA_TOPICS
      --metrics  serve Prometheus metrics on http://ADDRESS/metrics (loopback only)
      --relay    advertise the --listen ports and relay all traffic through them
      env: EMBEDDED_KAFKA_LISTEN, EMBEDDED_KAFKA_BROKERS, EMBEDDED_KAFKA_TOPICS="a:8,b:4", EMBEDDED_KAFKA_METRICS (options win)
    """;

var listen = Environment.GetEnvironmentVariable("EMBEDDED_KAFKA_LISTEN") is { Length: > 0 } envListen ? envListen : "127.0.0.1:9092";
var brokersText = Environment.GetEnvironmentVariable("EMBEDDED_KAFKA_BROKERS") is { Length: > 0 } envBrokers ? envBrokers : "1";
var metricsListen = Environment.GetEnvironmentVariable("EMBEDDED_KAFKA_METRICS") is { Length: > 0 } envMetrics ? envMetrics : null;
var topicSpecs = (Environment.GetEnvironmentVariable("EMBEDDED_KAFKA_TOPICS") ?? string.Empty)
    .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
    .Select(spec => (Spec: spec, Source: "EMBEDDED_KAFKA_TOPICS"))
    .ToList();
var relay = false;

for (var i = 0; i < args.Length; i++)
{
    var value = i + 1 < args.Length ? args[i + 1] : null;
    switch (args[i])
    {
        case "-h" or "--help":
            Console.WriteLine(Usage);
            return 0;
        case "--relay":
            relay = true;
            break;
        case "--listen" or "--brokers" or "--topic" or "--metrics" when value is null:
            return Fail($"{args[i]} needs a value");
        case "--listen":
            listen = value;
            i++;
            break;
        case "--brokers":
            brokersText = value;
            i++;
            break;
        case "--topic":
            topicSpecs.Add((value, "--topic"));
            i++;
            break;
        case "--metrics":
            metricsListen = value;
            i++;
            break;
        default:
            return Fail($"unknown argument '{args[i]}'");
    }
}

if (!TryParseListen(listen, out var endpoint))
{
    return Fail($"--listen must be an IPv4 loopback address with a port, e.g. 127.0.0.1:9092 (got '{listen}'); the embedded broker refuses to listen beyond loopback");
}

if (!int.TryParse(brokersText, NumberStyles.None, CultureInfo.InvariantCulture, out var brokers) || brokers is < 1 or > 9)
{
    return Fail($"--brokers must be 1-9 (got '{brokersText}')");
}

if (endpoint.Port + brokers - 1 > IPEndPoint.MaxPort)
{
    return Fail($"--listen port {endpoint.Port} leaves no room for {brokers} brokers");
}

// Same name twice: the later one (options come after the environment) wins.
var topics = new List<(string Topic, int Partitions)>();
foreach (var (spec, source) in topicSpecs)
{
    var separator = spec.LastIndexOf(':');
    var name = separator > 0 ? spec[..separator].Trim() : string.Empty;
    if (separator <= 0 || !IsTopicName(name) ||
        !int.TryParse(spec.AsSpan(separator + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var partitions) || partitions is < 1 or > 10_000)
    {
        return Fail($"{source} takes NAME:PARTITIONS with a Kafka topic name ([A-Za-z0-9._-], at most 249 characters) and 1-10000 partitions (got '{spec}')");
    }

    topics.RemoveAll(t => t.Topic == name);
    topics.Add((name, partitions));
}

Console.WriteLine("""
    Embedded Kafka: an IN-MEMORY librdkafka mock cluster, for development and tests only.
      No persistence: everything is lost on exit. Each partition keeps only about 5 MiB
      (or 100k batches); older records vanish silently.
      No CreateTopics/DeleteTopics/CreatePartitions/DescribeConfigs admin APIs: topics are
      created here (--topic) or automatically on first use (4 partitions).
      Never point anything that matters at it.
    """);

EmbeddedKafkaHost host;
try
{
    host = EmbeddedKafkaHost.Start(new EmbeddedKafkaHostOptions
    {
        Host = endpoint.Address.ToString(),
        FirstPort = endpoint.Port,
        Brokers = brokers,
        Topics = topics,
        RelayAllTraffic = relay,
    });
}
catch (SocketException e)
{
    Console.Error.WriteLine($"embedded-kafka: cannot listen on {endpoint.Address}:{endpoint.Port}-{endpoint.Port + brokers - 1}: {e.Message}");
    return 1;
}
catch (Exception e) when (e is InvalidOperationException or DllNotFoundException)
{
    Console.Error.WriteLine($"embedded-kafka: failed to start: {e.Message}");
    return 1;
}

IPEndPoint? metricsEndpoint = null;
if (metricsListen is not null && !TryParseListen(metricsListen, out metricsEndpoint))
{
    return Fail($"--metrics must be an IPv4 loopback address with a port (got '{metricsListen}')");
}

using var metrics = metricsEndpoint is null ? null : EmbeddedKafkaMetrics.Start(metricsEndpoint, brokers, topics.Count);
await using (host)
{
    using var stop = new CancellationTokenSource();
    void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true;
        stop.Cancel();
    }

    using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
    using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
    for (var id = 1; id <= brokers; id++)
    {
        Console.WriteLine($"broker {id} at {endpoint.Address}:{endpoint.Port + id - 1}");
    }

    foreach (var (topic, partitions) in topics)
    {
        Console.WriteLine($"topic {topic} ({partitions} partitions, replication factor {Math.Min(3, brokers)})");
    }

    if (metricsEndpoint is not null)
    {
        Console.WriteLine($"metrics at http://{metricsEndpoint}/metrics");
    }

    Console.WriteLine($"embedded-kafka ready bootstrap={host.BootstrapServers}");
    try
    {
        await Task.Delay(Timeout.Infinite, stop.Token);
    }
    catch (OperationCanceledException)
    {
    }

    Console.WriteLine("embedded-kafka stopping");
}

Console.WriteLine("embedded-kafka stopped");
return 0;

static int Fail(string message)
{
    Console.Error.WriteLine($"embedded-kafka: {message}");
    Console.Error.WriteLine(Usage);
    return 2;
}

static bool TryParseListen(string text, out IPEndPoint endpoint)
{
    endpoint = new IPEndPoint(IPAddress.Loopback, 0);
    var trimmed = text.Trim();
    if (trimmed.StartsWith("localhost:", StringComparison.OrdinalIgnoreCase))
    {
        trimmed = string.Concat("127.0.0.1", trimmed.AsSpan("localhost".Length));
    }

    if (!IPEndPoint.TryParse(trimmed, out var parsed) || parsed.Port == 0 ||
        parsed.AddressFamily != AddressFamily.InterNetwork || !IPAddress.IsLoopback(parsed.Address) ||
        !trimmed.Contains(':', StringComparison.Ordinal))
    {
        return false;
    }

    endpoint = parsed;
    return true;
}

static bool IsTopicName(string name) =>
    name.Length is > 0 and <= 249 && name is not ("." or "..") && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');
