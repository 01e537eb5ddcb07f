using System.Globalization;
using System.Text;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Realtime.Contracts.V1;
using Realtime.Hosting;

namespace Realtime.Ctl;

/// <summary>Entry point of <c>rtctl</c>.</summary>
public static class Program
{
    private const string Usage = """
        rtctl: operator's tool for Realtime Pipeline

          rtctl token --user <subject> --channels <pattern>[,<pattern>...] [--ttl <duration>] [--roles <role>[,...]]
                      [--key-file <path> | env RT_SIGNING_KEY] [--issuer realtime-dev] [--audience realtime]
              Prints an HS256 token the local stack accepts. Duration: 90s, 15m, 2h, 1d (default 1h).
              Use --ttl 5m or less for tokens passed in URLs (access_token).

          rtctl revoke-sessions <subject> [--reason <text>] [--grpc http://127.0.0.1:9080]
          rtctl revoke-channel <subject> <channel> [--grpc http://127.0.0.1:9080]
                      [--token <jwt> | --key-file <path> | env RT_SIGNING_KEY]
              Revokes a user's sessions (or its access to one channel) on every gateway.

          rtctl publish <channel> <json> [--event <type>] [--grpc http://127.0.0.1:9080]
                      [--token <jwt> | --key-file <path> | env RT_SIGNING_KEY]
              Publishes one event through the gRPC Publisher API and prints its id and position.

          rtctl lag [--json]                     consumer lag of the fanout group per ingress partition and of
                                                 every gateway on its delivery topic (events and age)
          rtctl nodes [--json]                   gateway nodes: alive, connections, routes, last heartbeat
          rtctl routes <channel> [--json]        the nodes routed for a channel, and its position
          rtctl tail <channel> [--since <epoch>:<seq>] [--count N] [--timeout 30s] [--gateway ws://127.0.0.1:8080/ws]
                                                 prints a channel's events as they come (resuming from --since)
          rtctl topics gc [--older-than 1d] [--yes]
                                                 deletes delivery topics of nodes gone longer than that (dry run
                                                 without --yes; needs a real Kafka: the embedded broker cannot delete)
              Connection settings: --kafka <bootstrap> --redis <config> --namespace <ns>, else the
              environment variables Kafka__BootstrapServers, Redis__Configuration, Pipeline__Namespace.

        Exit codes: 0 success, 1 the operation failed, 2 bad arguments.
        """;

    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }

        try
        {
            var options = Arguments.Parse(args.Skip(1));
            return args[0] switch
            {
                "token" => Token(options),
                "publish" => await PublishAsync(options),
                "revoke-sessions" => await RevokeAsync(options, channel: false),
                "revoke-channel" => await RevokeAsync(options, channel: true),
                "lag" => Operations.Lag(options),
                "nodes" => await Operations.NodesAsync(options),
                "routes" => await Operations.RoutesAsync(options),
                "tail" => await Operations.TailAsync(options, options.Optional("token") ?? MintToken(options, "rtctl", [options.Positional.FirstOrDefault() ?? "*"], TimeSpan.FromMinutes(30))),
                "topics" when options.Positional is ["gc"] => await Operations.TopicsGcAsync(options),
                _ => throw new ArgumentException($"Unknown command '{args[0]}'."),
            };
        }
        catch (ArgumentException e)
        {
            await Console.Error.WriteLineAsync($"rtctl: {e.Message}\n\n{Usage}");
            return 2;
        }
    }

    private static int Token(Arguments options)
    {
        var user = options.Required("user");
        var channels = options.Required("channels").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var ttl = ParseDuration(options.Optional("ttl") ?? "1h");
        var roles = (options.Optional("roles") ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Console.WriteLine(MintToken(options, user, channels, ttl, roles));
        return 0;
    }

    private static async Task<int> RevokeAsync(Arguments options, bool channel)
    {
        if (options.Positional.Count != (channel ? 2 : 1))
        {
            throw new ArgumentException(channel ? "revoke-channel takes <subject> <channel>." : "revoke-sessions takes <subject>.");
        }

        var token = options.Optional("token") ?? MintToken(options, "rtctl", [], TimeSpan.FromMinutes(5), ["realtime.admin"]);
        using var grpc = GrpcChannel.ForAddress(options.Optional("grpc") ?? "http://127.0.0.1:9080");
        var client = new Sessions.SessionsClient(grpc);
        var auth = new Metadata { { "authorization", $"Bearer {token}" } };
        try
        {
            var response = channel
                ? await client.RevokeChannelAccessAsync(new RevokeChannelAccessRequest { Subject = options.Positional[0], Channel = options.Positional[1] }, auth, deadline: DateTime.UtcNow.AddSeconds(30))
                : await client.RevokeSessionsAsync(new RevokeSessionsRequest { Subject = options.Positional[0], Reason = options.Optional("reason") ?? string.Empty }, auth, deadline: DateTime.UtcNow.AddSeconds(30));
            Console.WriteLine($"revokedAt={DateTimeOffset.FromUnixTimeMilliseconds(response.RevokedAtUnixMs):O}");
            return 0;
        }
        catch (RpcException e)
        {
            await Console.Error.WriteLineAsync($"rtctl: revoke failed: {e.StatusCode}: {e.Status.Detail}");
            return 1;
        }
    }

    private static async Task<int> PublishAsync(Arguments options)
    {
        if (options.Positional.Count != 2)
        {
            throw new ArgumentException("publish takes <channel> <json>.");
        }

        var channel = options.Positional[0];
        var json = options.Positional[1];
        var token = options.Optional("token") ?? MintToken(options, "rtctl", [channel], TimeSpan.FromMinutes(5));
        using var grpc = GrpcChannel.ForAddress(options.Optional("grpc") ?? "http://127.0.0.1:9080");
        var client = new Publisher.PublisherClient(grpc);
        try
        {
            var response = await client.PublishAsync(
                new PublishRequest
                {
                    Channel = channel,
                    EventType = options.Optional("event") ?? "message.created",
                    Payload = ByteString.CopyFromUtf8(json),
                    ContentType = "application/json",
                },
                new Metadata { { "authorization", $"Bearer {token}" } },
                deadline: DateTime.UtcNow.AddSeconds(30));
            Console.WriteLine($"eventId={response.EventId} partition={response.Position.Partition} offset={response.Position.Offset}");
            return 0;
        }
        catch (RpcException e)
        {
            await Console.Error.WriteLineAsync($"rtctl: publish failed: {e.StatusCode}: {e.Status.Detail}");
            return 1;
        }
    }

    private static string MintToken(Arguments options, string subject, IEnumerable<string> channels, TimeSpan ttl, IEnumerable<string>? roles = null)
    {
        var keyFile = options.Optional("key-file");
        var key = keyFile is not null ? File.ReadAllText(keyFile, Encoding.UTF8).Trim() : Environment.GetEnvironmentVariable("RT_SIGNING_KEY");
        if (string.IsNullOrEmpty(key))
        {
            throw new ArgumentException("No signing key: pass --key-file or set RT_SIGNING_KEY.");
        }

        return DevTokens.Mint(key, subject, channels, ttl, options.Optional("issuer") ?? "realtime-dev", options.Optional("audience") ?? "realtime", roles: roles);
    }

    internal static TimeSpan ParseDuration(string text)
    {
        if (text.Length >= 2 && double.TryParse(text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value > 0)
        {
            switch (text[^1])
            {
                case 's': return TimeSpan.FromSeconds(value);
                case 'm': return TimeSpan.FromMinutes(value);
                case 'h': return TimeSpan.FromHours(value);
                case 'd': return TimeSpan.FromDays(value);
            }
        }

        throw new ArgumentException($"Invalid duration '{text}' (use e.g. 90s, 15m, 2h, 1d).");
    }
}
