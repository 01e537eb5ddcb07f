using System.Globalization;
using System.Net;
using Realtime.EmbeddedKafka;

const string Usage = """
    usage: Realtime.EmbeddedKafka [--listen 127.0.0.1:9092] [--brokers 1] [--topic NAME:PARTITIONS]...
      env: EMBEDDED_KAFKA_LISTEN, EMBEDDED_KAFKA_BROKERS, EMBEDDED_KAFKA_TOPICS="a:8,b:4"
    """;

string listen = Environment.GetEnvironmentVariable("EMBEDDED_KAFKA_LISTEN") ?? "127.0.0.1:9092";
var brokersText = Environment.GetEnvironmentVariable("EMBEDDED_KAFKA_BROKERS") ?? "1";
var topicArgs = (Environment.GetEnvironmentVariable("EMBEDDED_KAFKA_TOPICS") ?? string.Empty)
    .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();

for (var i = 0; i < args.Length; i++)
{
    var value = i + 1 < args.Length ? args[i + 1] : null;
    switch (args[i])
    {
        case "--listen" when value is not null: listen = value; i++; break;
        case "--brokers" when value is not null: brokersText = value; i++; break;
        case "--topic" when value is not null: topicArgs.Add(value); i++; break;
        case "-h" or "--help": Console.WriteLine(Usage); return 0;
        default: return Fail($"unknown or incomplete argument '{args[i]}'");
    }
}

if (!IPEndPoint.TryParse(listen, out var endpoint) || endpoint.Port == 0 || !IPAddress.IsLoopback(endpoint.Address))
{
    return Fail($"--listen must be a loopback address with a port, e.g. 127.0.0.1:9092 (got '{listen}')");
}

if (!int.TryParse(brokersText, NumberStyles.None, CultureInfo.InvariantCulture, out var brokers) || brokers is < 1 or > 9)
{
    return Fail($"--brokers must be 1-9 (got '{brokersText}')");
}

var topics = new List<(string, int)>();
foreach (var spec in topicArgs)
{
    var parts = spec.Split(':');
    if (parts.Length != 2 || parts[0].Length == 0 || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var partitions) || partitions < 1)
    {
        return Fail($"--topic takes NAME:PARTITIONS (got '{spec}')");
    }

    topics.Add((parts[0], partitions));
}

Console.WriteLine("""
    Embedded Kafka: librdkafka's IN-MEMORY mock cluster, for development and tests only.
      Nothing is persisted; each partition keeps only about 5 MiB (older records vanish silently).
      No CreateTopics/DeleteTopics/DescribeConfigs admin APIs; topics are created here or on first use.
      Never point production at it.
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
    });
}
catch (System.Net.Sockets.SocketException e)
{
    return Fail($"cannot listen on {listen}: {e.Message}");
}

await using (host)
{
    using var stop = new CancellationTokenSource();
    using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
    using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
    foreach (var (topic, partitions) in topics)
    {
        Console.WriteLine($"topic {topic} ({partitions} partitions)");
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

return 0;

static int Fail(string message)
{
    Console.Error.WriteLine($"embedded-kafka: {message}\n{Usage}");
    return 2;
}
