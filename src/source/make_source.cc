#include "source/make_source.h"

#include "source/command_source.h"
#include "source/file_source.h"
#include "source/http_json_source.h"
#include "source/median_source.h"
#include "source/random_int_source.h"

namespace metronome {

Result<std::unique_ptr<Source>> make_source(const SourceConfig& config, int decimals,
                                            const SecretRegistry* secrets, Clock& clock) {
  return std::visit(
      [&](const auto& c) -> Result<std::unique_ptr<Source>> {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, RandomIntSourceConfig>) {
          return std::unique_ptr<Source>(std::make_unique<RandomIntSource>(c.min, c.max));
        } else if constexpr (std::is_same_v<T, HttpJsonSourceConfig>) {
          METRONOME_ASSIGN_OR_RETURN(auto source,
                                     HttpJsonSource::create(c, decimals, secrets, clock));
          return std::unique_ptr<Source>(std::move(source));
        } else if constexpr (std::is_same_v<T, CommandSourceConfig>) {
          return std::unique_ptr<Source>(
              std::make_unique<CommandSource>(c.argv, c.timeout, decimals, clock));
        } else if constexpr (std::is_same_v<T, FileSourceConfig>) {
          return std::unique_ptr<Source>(std::make_unique<FileSource>(c.path, decimals));
        } else {
          std::vector<MedianSource::Member> members;
          for (const MedianMember& m : c.sources) {
            METRONOME_ASSIGN_OR_RETURN(auto source,
                                       make_source(m.source, decimals, secrets, clock));
            members.push_back({m.name, std::move(source)});
          }
          return std::unique_ptr<Source>(
              std::make_unique<MedianSource>(std::move(members), c.quorum, c.max_spread_pct));
        }
      },
      config);
}

}  // namespace metronome
