using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Realtime.Gateway.Auth;

namespace Realtime.Gateway.Tests.Auth;

public sealed class ChannelAuthorizerTests
{
    private static readonly string[] RoomsOnly = ["room:*"];

    private static ClientIdentity Alice(params string[] patterns) =>
        new("alice", "acme", ChannelPermissions.All(patterns.Length == 0 ? RoomsOnly : patterns), DateTimeOffset.UtcNow.AddMinutes(5));

    private static ChannelAuthorizer Create(AuthOptions options) =>
        new(Options.Create(options), new RevocationList(TimeProvider.System), TimeProvider.System, NullLogger<ChannelAuthorizer>.Instance);

    [Fact]
    public async Task By_default_the_token_decides_and_grants_nothing_it_does_not_name()
    {
        using var authorizer = Create(new AuthOptions());
        Assert.True(await authorizer.AuthorizeAsync(Alice(), ChannelAction.Subscribe, "room:1"));
        Assert.False(await authorizer.AuthorizeAsync(Alice(), ChannelAction.Subscribe, "org:1"));
        Assert.False(await authorizer.AuthorizeAsync(Alice("*"), ChannelAction.Subscribe, "room:bad name"));
    }

    [Fact]
    public async Task A_namespace_rule_can_deny_an_action_whatever_the_token_says()
    {
        using var authorizer = Create(new AuthOptions
        {
            Namespaces = new() { ["announce"] = new NamespaceRules { Publish = ChannelRule.Deny } },
        });
        Assert.True(await authorizer.AuthorizeAsync(Alice("*"), ChannelAction.Subscribe, "announce:all"));
        Assert.False(await authorizer.AuthorizeAsync(Alice("*"), ChannelAction.Publish, "announce:all"));
        Assert.True(await authorizer.AuthorizeAsync(Alice("*"), ChannelAction.Publish, "room:1"));
    }

    [Fact]
    public async Task The_callback_decides_its_namespaces_is_cached_and_fails_closed()
    {
        var asked = new List<JsonObject>();
        var port = AsymmetricTokenTests.FreeLoopbackPort();
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var serving = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var context = await listener.GetContextAsync().WaitAsync(stop.Token);
                using var reader = new StreamReader(context.Request.InputStream);
                var question = JsonNode.Parse(await reader.ReadToEndAsync(stop.Token))!.AsObject();
                lock (asked)
                {
                    asked.Add(question);
                }

                var channel = (string?)question["channel"];
                context.Response.StatusCode = channel == "org:broken" ? 500 : 200;
                var body = Encoding.UTF8.GetBytes($$"""{"allow":{{(channel == "org:acme" ? "true" : "false")}}}""");
                await context.Response.OutputStream.WriteAsync(body, stop.Token);
                context.Response.Close();
            }
        }, stop.Token);

        using var authorizer = Create(new AuthOptions
        {
            Namespaces = new() { ["org"] = new NamespaceRules { Subscribe = ChannelRule.Callback, Publish = ChannelRule.Callback } },
            Callback = new AuthorizationCallbackOptions { Url = new Uri($"http://127.0.0.1:{port}/authorize"), CacheTtl = TimeSpan.FromMinutes(1) },
        });

        // The token's patterns do not matter in a callback namespace.
        Assert.True(await authorizer.AuthorizeAsync(Alice(), ChannelAction.Subscribe, "org:acme"));
        Assert.True(await authorizer.AuthorizeAsync(Alice(), ChannelAction.Subscribe, "org:acme"));
        Assert.False(await authorizer.AuthorizeAsync(Alice("*"), ChannelAction.Subscribe, "org:other"));
        Assert.False(await authorizer.AuthorizeAsync(Alice("*"), ChannelAction.Subscribe, "org:broken"));
        lock (asked)
        {
            // Asked once per distinct question: the repeat came from the cache.
            Assert.Equal(3, asked.Count);
            Assert.Equal(("alice", "acme", "org:acme", "subscribe"), ((string?)asked[0]["subject"], (string?)asked[0]["tenant"], (string?)asked[0]["channel"], (string?)asked[0]["action"]));
        }

        // The backend is gone: denied, not an exception, and not remembered as an answer.
        await stop.CancelAsync();
        listener.Stop();
        await serving.ContinueWith(_ => { }, TaskScheduler.Default);
        Assert.False(await authorizer.AuthorizeAsync(Alice(), ChannelAction.Publish, "org:acme"));
        Assert.True(await authorizer.AuthorizeAsync(Alice(), ChannelAction.Subscribe, "org:acme"));
    }

    [Fact]
    public void A_callback_rule_without_a_url_is_refused_at_start()
    {
        var options = new AuthOptions { SigningKey = new string('k', 32), DefaultRules = new NamespaceRules { History = ChannelRule.Callback } };
        var problems = options.Validate(new System.ComponentModel.DataAnnotations.ValidationContext(options)).ToList();
        Assert.Contains(problems, p => p.ErrorMessage!.Contains("Auth:Callback:Url", StringComparison.Ordinal));
    }
}
