using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>A pipeline shared by the tests of one class (an xunit class fixture), started with the given settings.</summary>
public abstract class PipelineFixture(
    TestInfrastructure infrastructure,
    string hint,
    int gateways = 2,
    IReadOnlyDictionary<string, string?>? settings = null) : IAsyncLifetime
{
    private LocalPipeline? _stack;

    public LocalPipeline Stack => _stack ?? throw new InvalidOperationException("Pipeline not started.");

    public async ValueTask InitializeAsync() =>
        _stack = await LocalPipeline.StartAsync(infrastructure, hint, gateways, settings: settings);

    public async ValueTask DisposeAsync()
    {
        if (_stack is not null)
        {
            await _stack.DisposeAsync();
        }

        GC.SuppressFinalize(this);
    }
}
