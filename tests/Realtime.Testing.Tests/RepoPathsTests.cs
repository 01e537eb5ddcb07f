using Realtime.Testing;

namespace Realtime.Testing.Tests;

public sealed class RepoPathsTests
{
    [Fact]
    public void Root_is_the_directory_of_the_solution()
    {
        Assert.True(File.Exists(Path.Combine(RepoPaths.Root, "Realtime.Pipeline.sln")));
        Assert.StartsWith(RepoPaths.Root, AppContext.BaseDirectory, StringComparison.Ordinal);
    }

    [Fact]
    public void Configuration_and_framework_are_those_of_the_test_assembly()
    {
        var expected = Path.Combine(RepoPaths.Root, "tests", "Realtime.Testing.Tests", "bin", RepoPaths.Configuration, RepoPaths.TargetFramework);

        Assert.Equal(Path.TrimEndingDirectorySeparator(expected), Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory));
        Assert.True(RepoPaths.Configuration is "Debug" or "Release", RepoPaths.Configuration);
        Assert.Equal("net10.0", RepoPaths.TargetFramework);
    }

    [Fact]
    public void Project_output_is_in_the_same_configuration()
    {
        // Realtime.Testing is built with this assembly, so its output exists.
        var path = RepoPaths.ProjectOutput("tests/Realtime.Testing", "Realtime.Testing.dll");

        Assert.True(File.Exists(path));
        Assert.Equal(
            Path.Combine(RepoPaths.Root, "tests", "Realtime.Testing", "bin", RepoPaths.Configuration, "net10.0", "Realtime.Testing.dll"),
            path);
    }

    [Fact]
    public void Missing_output_says_which_project_to_build()
    {
        var error = Assert.Throws<FileNotFoundException>(() => RepoPaths.ProjectOutput("src/NoSuchProject", "Realtime.NoSuchProject.dll"));

        Assert.Contains("src/NoSuchProject", error.Message, StringComparison.Ordinal);
        Assert.Contains($"-c {RepoPaths.Configuration}", error.Message, StringComparison.Ordinal);
        Assert.EndsWith("Realtime.NoSuchProject.dll", error.FileName, StringComparison.Ordinal);
    }

    [Fact]
    public void Logs_are_under_test_results_of_the_root() =>
        Assert.Equal(Path.Combine(RepoPaths.Root, "TestResults", "logs"), RepoPaths.Logs);
}
